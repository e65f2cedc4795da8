"""Two-view geometry for planning: rays, triangulation, epipolar lines (no Django).

This module is the adapter between the planning code and the shared
two-view geometry (``geometry.twoview``): triangulation, epipolar lines and
the angle between views come from there; only projection and drawing helpers are here.

Conventions (docs/CONVENTIONS.md): pinhole ``K`` in pixels, ``T_cam_from_world``
4x4 mapping world mm (CT LPS when registered) to camera mm; pixel ``(u, v)`` with the
centre of the top-left pixel at (0, 0).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from geometry import twoview
from geometry.camera import project as project_points
from geometry.camera import source_position
from geometry.rigid import validate_rigid
from planning.engine.errors import PlanningRefused


@dataclass(frozen=True, eq=False)
class ViewGeometry:
    """One calibrated, posed X-ray view.

    Attributes:
        K: (3, 3) intrinsics in pixels.
        T_cam_from_world: (4, 4) pose, world mm -> camera mm.
        width, height: image size in pixels.
        source: where the geometry came from, e.g. ``{"K": "calibration profile #3",
            "pose": "registration #7"}`` (shown to the user).
    """

    K: np.ndarray
    T_cam_from_world: np.ndarray
    width: int
    height: int
    source: dict = field(default_factory=dict)
    pixel_spacing_mm: tuple[float, float] = (1.0, 1.0)

    def __post_init__(self) -> None:
        K = np.asarray(self.K, dtype=np.float64)
        if K.shape != (3, 3) or not np.all(np.isfinite(K)) or K[0, 0] <= 0 or K[1, 1] <= 0:
            raise PlanningRefused("K must be a finite 3x3 intrinsic matrix with positive focal lengths")
        object.__setattr__(self, "K", K)
        object.__setattr__(
            self, "T_cam_from_world", validate_rigid(self.T_cam_from_world, "T_cam_from_world")
        )

    @property
    def source_world(self) -> np.ndarray:
        """X-ray source (camera centre) in world mm."""
        return source_position(self.T_cam_from_world)

    @property
    def view_direction(self) -> np.ndarray:
        """Unit principal axis (camera +z, source toward detector) in world coordinates."""
        return self.T_cam_from_world[2, :3].copy()

    @property
    def source_to_detector_mm(self) -> float:
        return float(self.K[0, 0] * self.pixel_spacing_mm[0])

    def to_json(self) -> dict:
        return {
            "K": self.K.tolist(),
            "T_cam_from_world": self.T_cam_from_world.tolist(),
            "width": int(self.width),
            "height": int(self.height),
            "pixel_spacing_mm": [float(s) for s in self.pixel_spacing_mm],
            "source": dict(self.source),
        }

    @classmethod
    def from_json(cls, data: dict) -> ViewGeometry:
        return cls(
            K=np.asarray(data["K"], dtype=np.float64),
            T_cam_from_world=np.asarray(data["T_cam_from_world"], dtype=np.float64),
            width=int(data["width"]),
            height=int(data["height"]),
            source=dict(data.get("source", {})),
            pixel_spacing_mm=tuple(data.get("pixel_spacing_mm", (1.0, 1.0))),
        )


# --------------------------------------------------------------------------- adapter
def as_twoview(view: ViewGeometry) -> twoview.View:
    """The shared two-view ``View`` (K, T_cam_from_world) of a planning view."""
    return twoview.View(K=view.K, T_cam_from_world=view.T_cam_from_world)


def project(view: ViewGeometry, points: Any) -> np.ndarray:
    """Project (N, 3) world mm points to (N, 2) pixels ``(u, v)``."""
    return project_points(points, view.K, view.T_cam_from_world)


def depth(view: ViewGeometry, points: Any) -> np.ndarray:
    """Camera z (mm) of world points; > 0 in front of the source."""
    X = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    return X @ view.T_cam_from_world[2, :3] + view.T_cam_from_world[2, 3]


def triangulate(
    view1: ViewGeometry, uv1: Any, view2: ViewGeometry, uv2: Any
) -> tuple[np.ndarray, float]:
    """3D point (world mm) from a pick in each view by the midpoint of the closest points
    of the two rays, and the gap between the rays (mm, a consistency figure).
    Delegates to ``geometry.twoview.triangulate_midpoint``."""
    uv1 = np.asarray(uv1, dtype=np.float64).reshape(2)
    uv2 = np.asarray(uv2, dtype=np.float64).reshape(2)
    result = twoview.triangulate_midpoint(
        as_twoview(view1), uv1, as_twoview(view2), uv2
    )
    return np.asarray(result.point_world, dtype=np.float64), float(result.gap_mm)


def epipolar_line(view_from: ViewGeometry, uv: Any, view_to: ViewGeometry) -> np.ndarray:
    """Epipolar line in ``view_to`` of pick ``uv`` in ``view_from``: ``(a, b, c)`` with
    ``a u + b v + c = 0`` and ``a^2 + b^2 = 1`` (so ``a u + b v + c`` is a signed pixel
    distance). Delegates to ``geometry.twoview.epipolar_line``."""
    uv = np.asarray(uv, dtype=np.float64).reshape(2)
    return np.asarray(
        twoview.epipolar_line(as_twoview(view_from), uv, as_twoview(view_to)),
        dtype=np.float64,
    )


def snap_to_line(uv: Any, line: np.ndarray) -> np.ndarray:
    """Orthogonal projection of pixel ``uv`` onto normalised line ``(a, b, c)``."""
    p = np.asarray(uv, dtype=np.float64).reshape(2)
    a, b, c = line
    dist = a * p[0] + b * p[1] + c
    return p - dist * np.array([a, b])


def angle_between_views(view1: ViewGeometry, view2: ViewGeometry) -> float:
    """Angle (degrees, 0..90) between the two viewing directions. Views 180° apart see
    the same projection mirrored, so they count as 0° apart for triangulation."""
    a = twoview.angle_between_views(as_twoview(view1), as_twoview(view2))
    return float(min(a, 180.0 - a))


def detector_corners_world(view: ViewGeometry) -> np.ndarray:
    """The four image corners on the detector plane (camera z = f) in world mm, for drawing
    the source/detector frustum; order: (0,0), (W-1,0), (W-1,H-1), (0,H-1)."""
    f = view.source_to_detector_mm
    corners = np.array(
        [[0, 0], [view.width - 1, 0], [view.width - 1, view.height - 1], [0, view.height - 1]],
        dtype=np.float64,
    )
    pix = np.concatenate([corners, np.ones((4, 1))], axis=1)
    d_cam = pix @ np.linalg.inv(view.K).T
    x_cam = d_cam * f
    R, t = view.T_cam_from_world[:3, :3], view.T_cam_from_world[:3, 3]
    return (x_cam - t) @ R
