"""Effective X-ray source from far-layer beads (its K: ``geometry.camera.Camera.from_source``).

Frames: the detector frame of CONVENTIONS.md (mm). Each far-layer bead at known 3-D
position ``P`` and its dewarped detector point ``D = (x, y, 0)`` define a ray; the source
``S = (Sx, Sy, -f)`` is the least-squares point nearest all rays, then refined by
minimising the reprojection error on the detector (scipy ``least_squares``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import least_squares

from .detector import project_to_detector


@dataclass
class SourceEstimate:
    source_mm: np.ndarray  # (3,) detector frame
    covariance: np.ndarray  # (3, 3) mm^2
    residuals_mm: np.ndarray  # (N, 2) reprojection residuals on the detector
    inliers: np.ndarray  # (N,) bool

    @property
    def lateral_sd_mm(self) -> float:
        """Standard deviation of the lateral (x, y) position: sqrt(var_x + var_y)."""
        return float(np.sqrt(max(self.covariance[0, 0] + self.covariance[1, 1], 0.0)))

    @property
    def axial_sd_mm(self) -> float:
        return float(np.sqrt(max(self.covariance[2, 2], 0.0)))


def nearest_point_to_rays(points: np.ndarray, directions: np.ndarray) -> np.ndarray:
    """Least-squares point closest to lines ``points + t * directions`` (N, 3)."""
    d = directions / np.linalg.norm(directions, axis=1, keepdims=True)
    a = np.zeros((3, 3))
    b = np.zeros(3)
    for p, u in zip(points, d, strict=True):
        m = np.eye(3) - np.outer(u, u)
        a += m
        b += m @ p
    return np.linalg.solve(a, b)


def estimate_source(
    far_xyz_mm: np.ndarray, detector_xy_mm: np.ndarray, *, outlier_mm: float | None = None
) -> SourceEstimate:
    """Source from far-layer beads (N, 3) and their dewarped detector points (N, 2), mm."""
    far = np.asarray(far_xyz_mm, dtype=np.float64).reshape(-1, 3)
    det = np.asarray(detector_xy_mm, dtype=np.float64).reshape(-1, 2)
    if len(far) < 4:
        raise ValueError(f"at least 4 far-layer beads are needed for the source, got {len(far)}")
    det3 = np.column_stack([det, np.zeros(len(det))])
    s0 = nearest_point_to_rays(det3, far - det3)
    if not np.isfinite(s0).all() or s0[2] >= np.max(far[:, 2]):
        raise ValueError("far-layer rays do not converge in front of the detector")
    inl = np.ones(len(far), bool)

    def resid(s, sel):
        return (project_to_detector(far[sel], s) - det[sel]).ravel()

    sol = None
    for _ in range(3):
        sol = least_squares(resid, s0, args=(inl,), method="lm")
        r = project_to_detector(far, sol.x) - det
        rn = np.linalg.norm(r, axis=1)
        sigma = max(1.4826 * np.median(rn[inl]), 1e-4)
        thr = outlier_mm if outlier_mm is not None else max(4.0 * sigma, 0.05)
        new = rn < thr
        if new.sum() < 4 or np.array_equal(new, inl):
            break
        inl = new
        s0 = sol.x
    assert sol is not None
    r = project_to_detector(far, sol.x) - det
    jac = sol.jac
    dof = max(2 * int(inl.sum()) - 3, 1)
    s2 = float(np.sum(r[inl] ** 2)) / dof
    cov = s2 * np.linalg.pinv(jac.T @ jac)
    return SourceEstimate(sol.x, cov, r, inl)
