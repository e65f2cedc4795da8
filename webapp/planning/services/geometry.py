"""Two-view planning geometry: each view's camera (through :mod:`webapp.xray_view`), its
pose (the registration's, else the C-arm angles) and the warnings a surgeon must see.
Frames: poses ``T_cam_from_world``; world = CT LPS mm when both views are registered."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from geometry.camera import Camera
from geometry.carm import carm_pose
from planning.engine.views_geometry import ViewGeometry, angle_between_views
from webapp.records.models import XrayImage
from webapp.xray_view import camera_for_xray, display_uint8, read_view, view_png

MIN_VIEW_ANGLE_DEG = 30.0
DEFAULT_SOURCE_TO_ISOCENTER_RATIO = 0.6  # of SDD when DistanceSourceToPatient is unknown


# --------------------------------------------------------------------------- images
def xray_png(xray: XrayImage) -> bytes:
    """The X-ray as a viewer at the source sees it, windowed for display
    (:mod:`webapp.xray_view`); ``XrayUnavailable`` (a ValueError) when it cannot be read."""
    return view_png(xray)


def display_pixels(xray: XrayImage) -> np.ndarray:
    """uint8 (H, W) display image of ``xray`` (for reports)."""
    view = read_view(xray)
    return display_uint8(view.pixels, view.photometric)


# --------------------------------------------------------------------------- geometry
@dataclass
class PlanGeometry:
    views: list[ViewGeometry]
    world_frame: str  # "ct" or "carm"
    study_id: int | None
    angle_deg: float
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return {
            "views": [v.to_json() for v in self.views],
            "world_frame": self.world_frame,
            "study_id": self.study_id,
            "angle_between_views_deg": self.angle_deg,
            "warnings": list(self.warnings),
        }


def intrinsics(xray: XrayImage) -> tuple[Camera, str, bool]:
    """``(camera, source label, calibrated)`` for an X-ray; ValueError when unknown."""
    found = camera_for_xray(xray)
    return found.camera, found.source, found.calibrated


def _registration(xray: XrayImage):
    """The newest successful, not rejected registration of the X-ray, or None."""
    regs = xray.registrations.filter(status="ok").exclude(review_status="rejected")
    for reg in regs.order_by("-created_at"):
        if reg.T_cam_from_world:
            return reg
    return None


def _carm_T(xray: XrayImage, camera: Camera) -> np.ndarray:
    sid = (
        xray.distance_source_to_patient_mm
        or DEFAULT_SOURCE_TO_ISOCENTER_RATIO * camera.source_to_detector_mm
    )
    return carm_pose(
        xray.primary_angle_deg or 0.0, xray.secondary_angle_deg or 0.0, sid, (0.0, 0.0, 0.0)
    )


def plan_geometry(xray1: XrayImage, xray2: XrayImage) -> PlanGeometry:
    """Geometry of the two views in a common world frame, with warnings for the user."""
    cams, regs, warnings = [], [], []
    for i, xray in enumerate((xray1, xray2), start=1):
        camera, k_source, calibrated = intrinsics(xray)
        if not calibrated:
            warnings.append(
                f"View {i} lacks a calibration: intrinsics come from the image header, "
                "so 3D positions are approximate."
            )
        if xray.carm is not None and xray.carm.needs_dewarping and not xray.dewarped_file:
            warnings.append(
                f"View {i} comes from an image intensifier and is not dewarped yet: its "
                "distortion (several mm at the edge) is not corrected."
            )
        cams.append((camera, k_source))
        regs.append(_registration(xray))
    registered = all(r is not None for r in regs) and regs[0].study_id == regs[1].study_id
    if not registered and any(r is not None for r in regs):
        warnings.append(
            "Only one view is registered to this CT (or they are registered to different CTs): "
            "both views use their C-arm angles instead."
        )
    views = []
    for i, ((camera, k_source), reg, xray) in enumerate(
        zip(cams, regs, (xray1, xray2), strict=True), 1
    ):
        if registered:
            T = np.asarray(reg.T_cam_from_world, dtype=np.float64)
            pose_source = f"registration #{reg.pk} to CT study #{reg.study_id}"
        else:
            T = _carm_T(xray, camera)
            pose_source = (
                f"C-arm angles (LAO {xray.primary_angle_deg or 0:.0f}°, "
                f"cranial {xray.secondary_angle_deg or 0:.0f}°), not registered"
            )
        views.append(
            ViewGeometry(
                K=camera.K,
                T_cam_from_world=T,
                width=camera.width,
                height=camera.height,
                source={"K": k_source, "pose": pose_source, "xray_id": xray.pk, "view": i},
                pixel_spacing_mm=camera.pixel_spacing_mm,
            )
        )
    angle = angle_between_views(views[0], views[1])
    if angle < MIN_VIEW_ANGLE_DEG:
        warnings.insert(
            0,
            f"The two views are only {angle:.0f}° apart (at least {MIN_VIEW_ANGLE_DEG:.0f}° "
            "recommended): depth along the views is poorly determined.",
        )
    return PlanGeometry(
        views=views,
        world_frame="ct" if registered else "carm",
        study_id=regs[0].study_id if registered else None,
        angle_deg=angle,
        warnings=warnings,
    )
