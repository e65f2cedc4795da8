"""The engine's camera is the one pinhole camera of :mod:`geometry.camera`."""

from geometry.camera import Camera, backproject, pixel_rays, project, source_position

__all__ = ["Camera", "backproject", "pixel_rays", "project", "source_position"]
