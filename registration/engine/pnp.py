"""Pose from 2D-3D correspondences: PnP inside RANSAC, then Levenberg-Marquardt on the inliers.

Frames: ``points_3d`` are LPS world mm, ``points_2d`` are pixel coordinates ``(u, v)``
(u = column, v = row, top-left pixel centre = (0, 0)) of the image whose intrinsics are
``K``. The returned pose is ``T_cam_from_world`` (4x4, mm), camera axes as OpenCV.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from geometry.camera import project
from geometry.rigid import hat


@dataclass
class PnPResult:
    ok: bool
    T_cam_from_world: np.ndarray | None
    inliers: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    n_correspondences: int = 0
    n_inliers: int = 0
    reprojection_rmse_px: float = float("nan")
    message: str = ""

    @property
    def inlier_ratio(self) -> float:
        return self.n_inliers / self.n_correspondences if self.n_correspondences else 0.0


def _to_T(rvec: np.ndarray, tvec: np.ndarray) -> np.ndarray:
    R, _ = cv2.Rodrigues(np.asarray(rvec, dtype=np.float64).reshape(3, 1))
    T = np.eye(4)
    T[:3, :3] = R
    T[:3, 3] = np.asarray(tvec, dtype=np.float64).reshape(3)
    return T


def _from_T(T: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    rvec, _ = cv2.Rodrigues(np.asarray(T[:3, :3], dtype=np.float64))
    return rvec.reshape(3, 1), np.asarray(T[:3, 3], dtype=np.float64).reshape(3, 1)


def reprojection_errors(
    points_2d: np.ndarray, points_3d: np.ndarray, K: np.ndarray, T_cam_from_world: np.ndarray
) -> np.ndarray:
    """Per-correspondence reprojection error in pixels (inf for points behind the source)."""
    X = np.asarray(points_3d, dtype=np.float64)
    T = np.asarray(T_cam_from_world, dtype=np.float64)
    z = X @ T[2, :3] + T[2, 3]
    uv = project(X, K, T)
    err = np.linalg.norm(uv - np.asarray(points_2d, dtype=np.float64), axis=1)
    err[~(z > 1e-6)] = np.inf
    return err


def solve_pnp_ransac(
    points_2d: np.ndarray,
    points_3d: np.ndarray,
    K: np.ndarray,
    *,
    reprojection_px: float = 3.0,
    iterations: int = 500,
    confidence: float = 0.999,
    T_init: np.ndarray | None = None,
    min_inliers: int = 6,
    seed: int = 0,
) -> PnPResult:
    """Robust pose from correspondences.

    RANSAC with OpenCV's SQPnP minimal solver (EPnP fallback), then LM refinement
    (``cv2.solvePnPRefineLM``) on the inliers and a final inlier re-selection.
    ``reprojection_px`` is the RANSAC inlier threshold in pixels of ``K``'s image.
    ``T_init`` (optional) seeds the solver with an initial guess.
    """
    p2 = np.ascontiguousarray(np.asarray(points_2d, dtype=np.float64).reshape(-1, 2))
    p3 = np.ascontiguousarray(np.asarray(points_3d, dtype=np.float64).reshape(-1, 3))
    n = len(p2)
    if len(p3) != n:
        raise ValueError(f"{n} image points but {len(p3)} 3-D points")
    finite = np.isfinite(p2).all(1) & np.isfinite(p3).all(1)
    if n < 6 or finite.sum() < 6:
        return PnPResult(
            False,
            None,
            np.zeros(n, bool),
            n,
            0,
            message=f"too few correspondences ({int(finite.sum())}, need >= 6)",
        )
    Kd = np.asarray(K, dtype=np.float64)
    dist = np.zeros(5)
    cv2.setRNGSeed(int(seed))
    idx = np.flatnonzero(finite)
    best = None
    for flag in (cv2.SOLVEPNP_SQPNP, cv2.SOLVEPNP_EPNP):
        try:
            if T_init is not None:
                r0, t0 = _from_T(np.asarray(T_init, dtype=np.float64))
                ok, rvec, tvec, inl = cv2.solvePnPRansac(
                    p3[idx],
                    p2[idx],
                    Kd,
                    dist,
                    rvec=r0.copy(),
                    tvec=t0.copy(),
                    useExtrinsicGuess=True,
                    iterationsCount=int(iterations),
                    reprojectionError=float(reprojection_px),
                    confidence=float(confidence),
                    flags=cv2.SOLVEPNP_ITERATIVE,
                )
            else:
                ok, rvec, tvec, inl = cv2.solvePnPRansac(
                    p3[idx],
                    p2[idx],
                    Kd,
                    dist,
                    iterationsCount=int(iterations),
                    reprojectionError=float(reprojection_px),
                    confidence=float(confidence),
                    flags=flag,
                )
        except cv2.error:
            ok, inl = False, None
        if ok and inl is not None and len(inl) >= min_inliers:
            if best is None or len(inl) > len(best[2]):
                best = (rvec, tvec, inl)
            break
        if T_init is not None:
            T_init = None  # retry without the guess
    if best is None:
        return PnPResult(
            False, None, np.zeros(n, bool), n, 0, message="PnP-RANSAC found no consistent pose"
        )
    rvec, tvec, _ = best
    T = _to_T(rvec, tvec)
    # LM on inliers, re-select inliers, LM again.
    for _ in range(2):
        err = reprojection_errors(p2, p3, Kd, T)
        inl_mask = finite & (err < reprojection_px)
        if inl_mask.sum() < min_inliers:
            break
        r, t = _from_T(T)
        r, t = cv2.solvePnPRefineLM(p3[inl_mask], p2[inl_mask], Kd, dist, r, t)
        T = _to_T(r, t)
    err = reprojection_errors(p2, p3, Kd, T)
    inl_mask = finite & (err < reprojection_px)
    n_in = int(inl_mask.sum())
    rmse = float(np.sqrt(np.mean(err[inl_mask] ** 2))) if n_in else float("nan")
    ok = n_in >= min_inliers
    return PnPResult(
        ok,
        T if ok else None,
        inl_mask,
        n,
        n_in,
        rmse,
        message="" if ok else f"only {n_in} inliers after refinement (need >= {min_inliers})",
    )


def refine_pose_weighted(
    points_2d: np.ndarray,
    points_3d: np.ndarray,
    K: np.ndarray,
    T_cam_from_world: np.ndarray,
    weights: np.ndarray,
    *,
    gate_px: float = 3.0,
    huber_px: float = 1.0,
    iterations: int = 10,
) -> tuple[np.ndarray, int]:
    """Weighted robust Levenberg-Marquardt of a pose on many correspondences.

    Minimises ``sum_i w_i * huber(|proj(K, T, X_i) - x_i|)`` (pixels of ``K``'s image,
    Huber corner ``huber_px``) over the correspondences within ``gate_px`` of their
    projection at the start pose ``T_cam_from_world`` (the gate is kept fixed, so points
    the start calls outliers never enter). ``weights`` (N,) >= 0, e.g. the inverse
    predicted variance. The update is a left increment in the camera frame:
    ``T <- [exp(omega) | v] T``. Returns (refined ``T_cam_from_world``, points used);
    the start pose is returned unchanged when fewer than 6 points pass the gate.
    """
    x = np.asarray(points_2d, np.float64).reshape(-1, 2)
    X = np.asarray(points_3d, np.float64).reshape(-1, 3)
    w = np.asarray(weights, np.float64).reshape(-1)
    if not len(x) == len(X) == len(w):
        raise ValueError(f"{len(x)} image points, {len(X)} 3-D points, {len(w)} weights")
    Kd = np.asarray(K, np.float64)
    T = np.asarray(T_cam_from_world, np.float64).copy()
    use = np.isfinite(x).all(1) & np.isfinite(X).all(1) & np.isfinite(w) & (w > 0)
    use[use] &= reprojection_errors(x[use], X[use], Kd, T) < gate_px
    if use.sum() < 6:
        return T, int(use.sum())
    x, X, w = x[use], X[use], w[use] / w[use].max()
    fx, fy, s = Kd[0, 0], Kd[1, 1], Kd[0, 1]

    def residuals(Tm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return project(X, Kd, Tm) - x, X @ Tm[:3, :3].T + Tm[:3, 3]

    def cost(r: np.ndarray) -> float:
        e = np.linalg.norm(r, axis=1)
        rho = np.where(e <= huber_px, 0.5 * e**2, huber_px * (e - 0.5 * huber_px))
        return float((w * rho).sum())

    lam = 1e-3
    r, xc = residuals(T)
    c = cost(r)
    for _ in range(int(iterations)):
        e = np.linalg.norm(r, axis=1)
        wi = w * np.where(e <= huber_px, 1.0, huber_px / np.maximum(e, 1e-12))
        z = xc[:, 2]
        Jp = np.zeros((len(X), 2, 3))
        Jp[:, 0, 0] = fx / z
        Jp[:, 0, 1] = s / z
        Jp[:, 0, 2] = -(fx * xc[:, 0] + s * xc[:, 1]) / z**2
        Jp[:, 1, 1] = fy / z
        Jp[:, 1, 2] = -fy * xc[:, 1] / z**2
        J = np.concatenate([Jp @ -hat(xc), Jp], 2)  # d r / d (omega, v)
        H = np.einsum("n,nki,nkj->ij", wi, J, J)
        g = np.einsum("n,nki,nk->i", wi, J, r)
        improved = False
        for _ in range(8):
            delta = -np.linalg.solve(H + lam * np.diag(np.diag(H) + 1e-12), g)
            D = np.eye(4)
            D[:3, :3] = cv2.Rodrigues(delta[:3].reshape(3, 1))[0]
            D[:3, 3] = delta[3:]
            Tn = D @ T
            rn, xcn = residuals(Tn)
            cn = cost(rn) if (xcn[:, 2] > 1e-6).all() else np.inf
            if cn < c:
                T, r, xc, lam = Tn, rn, xcn, max(lam / 10, 1e-9)
                improved = c - cn > 1e-12 * max(c, 1.0)
                c = cn
                break
            lam *= 10
        if not improved:
            break
    return T, int(use.sum())
