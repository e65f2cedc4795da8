"""Two-view geometry of calibrated (dewarped) C-arm views (no Django imports): rays,
midpoint triangulation, the fundamental matrix, epipolar lines, the angle between views.

A view is intrinsics ``K`` (pixels, CONVENTIONS.md) plus the pose ``T_cam_from_world``
(4x4, world = LPS mm, camera = source-centred, +z toward the detector). Picks are
dewarped pixels ``(u, v)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from geometry.camera import project, source_position
from geometry.rigid import TransformError, hat, invert_rigid


@dataclass
class View:
    K: np.ndarray
    T_cam_from_world: np.ndarray

    def __post_init__(self) -> None:
        self.K = np.asarray(self.K, dtype=np.float64).reshape(3, 3)
        self.T_cam_from_world = np.asarray(self.T_cam_from_world, dtype=np.float64).reshape(4, 4)

    @property
    def R(self) -> np.ndarray:
        return self.T_cam_from_world[:3, :3]

    @property
    def t(self) -> np.ndarray:
        return self.T_cam_from_world[:3, 3]

    @property
    def centre_world(self) -> np.ndarray:
        """Source position in world mm."""
        return source_position(self.T_cam_from_world)

    def ray_world(self, uv) -> tuple[np.ndarray, np.ndarray]:
        """(origin, unit direction) in world mm of the ray through pixel ``uv``."""
        d_cam = np.linalg.solve(self.K, np.array([uv[0], uv[1], 1.0]))
        d = self.R.T @ d_cam
        return self.centre_world, d / np.linalg.norm(d)

    def project(self, xyz_world: np.ndarray) -> np.ndarray:
        """(N, 3) world mm -> (N, 2) pixels."""
        return project(xyz_world, self.K, self.T_cam_from_world)


@dataclass
class Triangulation:
    point_world: np.ndarray  # (3,) mm, midpoint of the common perpendicular
    gap_mm: float  # shortest distance between the two rays
    angle_deg: float  # angle between the two rays


def triangulate_midpoint(view_a: View, uv_a, view_b: View, uv_b) -> Triangulation:
    """Midpoint triangulation of one point picked in two views."""
    oa, da = view_a.ray_world(uv_a)
    ob, db = view_b.ray_world(uv_b)
    w0 = oa - ob
    b = float(da @ db)
    d = float(da @ w0)
    e = float(db @ w0)
    denom = 1.0 - b * b
    if denom < 1e-10:
        raise TransformError("the two rays are parallel: views too similar to triangulate")
    s = (b * e - d) / denom
    t = (e - b * d) / denom
    pa = oa + s * da
    pb = ob + t * db
    ang = float(np.degrees(np.arccos(np.clip(abs(b), 0, 1))))
    return Triangulation(0.5 * (pa + pb), float(np.linalg.norm(pa - pb)), ang)


def fundamental_matrix(view_a: View, view_b: View) -> np.ndarray:
    """F with ``x_b^T F x_a = 0`` for corresponding pixels (homogeneous)."""
    T_b_from_a = view_b.T_cam_from_world @ invert_rigid(view_a.T_cam_from_world)
    e = hat(T_b_from_a[:3, 3]) @ T_b_from_a[:3, :3]
    return np.linalg.inv(view_b.K).T @ e @ np.linalg.inv(view_a.K)


def epipolar_line(view_a: View, uv_a, view_b: View) -> np.ndarray:
    """Line ``(a, b, c)`` in view b (``a u + b v + c = 0``, ``a^2 + b^2 = 1``) of a pick in a."""
    line = fundamental_matrix(view_a, view_b) @ np.array([uv_a[0], uv_a[1], 1.0])
    n = np.hypot(line[0], line[1])
    if n < 1e-12:
        raise TransformError("the pick is at the epipole: no epipolar line")
    return line / n


def epipolar_distance(line: np.ndarray, uv) -> float:
    """Signed distance (pixels) of pixel ``uv`` from a normalised line."""
    return float(line[0] * uv[0] + line[1] * uv[1] + line[2])


def angle_between_views(view_a: View, view_b: View) -> float:
    """Angle in degrees between the two viewing directions (camera +z axes)."""
    za = view_a.R.T @ np.array([0, 0, 1.0])
    zb = view_b.R.T @ np.array([0, 0, 1.0])
    return float(np.degrees(np.arccos(np.clip(za @ zb, -1, 1))))
