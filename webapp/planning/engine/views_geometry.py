"""Two-view geometry for planning: rays, triangulation, epipolar lines (no Django).

This module is the adapter between the planning code and the calibration engine's
two-view geometry (``calibration.engine``): when that engine provides triangulation,
epipolar lines and the angle between views, they are used; the local fallbacks below
implement the same definitions and are kept minimal.

Conventions (../shared/CONVENTIONS.md): pinhole ``K`` in pixels, ``T_cam_from_world``
4x4 mapping world mm (CT LPS when registered) to camera mm; pixel ``(u, v)`` with the
centre of the top-left pixel at (0, 0).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from webapp.planning.engine.transforms import check_rigid


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
            raise ValueError("K must be a finite 3x3 intrinsic matrix with positive focal lengths")
        object.__setattr__(self, "K", K)
        object.__setattr__(
            self, "T_cam_from_world", check_rigid(self.T_cam_from_world, "T_cam_from_world")
        )

    @property
    def source_world(self) -> np.ndarray:
        """X-ray source (camera centre) in world mm."""
        R, t = self.T_cam_from_world[:3, :3], self.T_cam_from_world[:3, 3]
        return -R.T @ t

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
_CALIB_MODULES = (
    "calibration.engine.twoview",
    "calibration.engine.two_view",
    "calibration.engine.geometry",
)


def _calibration_function(*names: str):
    """The first function named in ``names`` found in the calibration engine, or None."""
    for module_name in _CALIB_MODULES:
        try:
            module = importlib.import_module(module_name)
        except Exception:  # noqa: BLE001 - module absent or broken: use the fallback
            continue
        for name in names:
            func = getattr(module, name, None)
            if callable(func):
                return func
    return None


def project(view: ViewGeometry, points: Any) -> np.ndarray:
    """Project (N, 3) world mm points to (N, 2) pixels ``(u, v)``."""
    X = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    x_cam = X @ view.T_cam_from_world[:3, :3].T + view.T_cam_from_world[:3, 3]
    h = x_cam @ view.K.T
    with np.errstate(divide="ignore", invalid="ignore"):
        return h[:, :2] / h[:, 2:3]


def depth(view: ViewGeometry, points: Any) -> np.ndarray:
    """Camera z (mm) of world points; > 0 in front of the source."""
    X = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    return X @ view.T_cam_from_world[2, :3] + view.T_cam_from_world[2, 3]


def ray(view: ViewGeometry, uv: Any) -> tuple[np.ndarray, np.ndarray]:
    """The X-ray through pixel ``uv``: ``(source_world, unit direction_world)``."""
    u, v = np.asarray(uv, dtype=np.float64).reshape(2)
    d_cam = np.linalg.solve(view.K, np.array([u, v, 1.0]))
    d_world = view.T_cam_from_world[:3, :3].T @ d_cam
    return view.source_world, d_world / np.linalg.norm(d_world)


def _triangulate_midpoint(
    view1: ViewGeometry, uv1: Any, view2: ViewGeometry, uv2: Any
) -> tuple[np.ndarray, float]:
    o1, d1 = ray(view1, uv1)
    o2, d2 = ray(view2, uv2)
    w0 = o1 - o2
    b = float(d1 @ d2)
    d = float(d1 @ w0)
    e = float(d2 @ w0)
    denom = 1.0 - b * b
    if denom < 1e-12:
        raise ValueError("the two rays are parallel: the views must be taken at different angles")
    s = (b * e - d) / denom
    t = (e - b * d) / denom
    p1 = o1 + s * d1
    p2 = o2 + t * d2
    return (p1 + p2) / 2.0, float(np.linalg.norm(p1 - p2))


def triangulate(
    view1: ViewGeometry, uv1: Any, view2: ViewGeometry, uv2: Any
) -> tuple[np.ndarray, float]:
    """3D point (world mm) from a pick in each view by the midpoint of the closest points
    of the two rays, and the gap between the rays (mm, a consistency figure)."""
    func = _calibration_function("triangulate_midpoint", "triangulate_two_views", "triangulate")
    if func is not None:
        try:
            result = func(
                view1.K, view1.T_cam_from_world, uv1, view2.K, view2.T_cam_from_world, uv2
            )
            point, gap = result[0], result[1]
            return np.asarray(point, dtype=np.float64).reshape(3), float(gap)
        except TypeError:
            pass  # different signature: use the local definition
    return _triangulate_midpoint(view1, uv1, view2, uv2)


def fundamental_matrix(view_from: ViewGeometry, view_to: ViewGeometry) -> np.ndarray:
    """``F`` with ``x_to^T F x_from = 0`` for corresponding homogeneous pixels."""
    T_to_from_from = view_to.T_cam_from_world @ np.linalg.inv(view_from.T_cam_from_world)
    R, t = T_to_from_from[:3, :3], T_to_from_from[:3, 3]
    tx = np.array([[0, -t[2], t[1]], [t[2], 0, -t[0]], [-t[1], t[0], 0]])
    return np.linalg.inv(view_to.K).T @ tx @ R @ np.linalg.inv(view_from.K)


def epipolar_line(view_from: ViewGeometry, uv: Any, view_to: ViewGeometry) -> np.ndarray:
    """Epipolar line in ``view_to`` of pick ``uv`` in ``view_from``: ``(a, b, c)`` with
    ``a u + b v + c = 0`` and ``a^2 + b^2 = 1`` (so ``a u + b v + c`` is a signed pixel
    distance)."""
    func = _calibration_function("epipolar_line")
    line = None
    if func is not None:
        try:
            line = np.asarray(
                func(
                    view_from.K, view_from.T_cam_from_world, uv, view_to.K, view_to.T_cam_from_world
                ),
                dtype=np.float64,
            ).reshape(3)
        except TypeError:
            line = None
    if line is None:
        u, v = np.asarray(uv, dtype=np.float64).reshape(2)
        line = fundamental_matrix(view_from, view_to) @ np.array([u, v, 1.0])
    norm = float(np.hypot(line[0], line[1]))
    if norm < 1e-15:
        raise ValueError("the epipolar line is undefined (the pick is at the epipole)")
    return line / norm


def snap_to_line(uv: Any, line: np.ndarray) -> np.ndarray:
    """Orthogonal projection of pixel ``uv`` onto normalised line ``(a, b, c)``."""
    p = np.asarray(uv, dtype=np.float64).reshape(2)
    a, b, c = line
    dist = a * p[0] + b * p[1] + c
    return p - dist * np.array([a, b])


def angle_between_views(view1: ViewGeometry, view2: ViewGeometry) -> float:
    """Angle (degrees, 0..90) between the two viewing directions (principal axes).

    Views 180° apart see the same projection mirrored, so they count as 0° apart."""
    func = _calibration_function("angle_between_views")
    if func is not None:
        try:
            return float(func(view1.T_cam_from_world, view2.T_cam_from_world))
        except TypeError:
            pass
    c = float(np.clip(abs(view1.view_direction @ view2.view_direction), 0.0, 1.0))
    return float(np.degrees(np.arccos(c)))


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
