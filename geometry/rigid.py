"""Rigid transforms ``T_a_from_b`` (4x4, mm), their one validator, inverse, composition,
re-orthonormalisation, distances and twists (no Django imports).

One tolerance, :data:`RIGID_TOL`, decides what counts as rigid everywhere: rotation
orthonormal, determinant +1 and bottom row ``[0, 0, 0, 1]`` each within it. Anything else
raises :class:`TransformError` (a ``ValueError``) with a one-line message that names the
transform.

Twists (``se3_exp``/``se3_log``): ``xi = (omega (3), v (3))`` with ``omega`` a rotation
vector in radians and ``v`` the translational part in mm;
``exp(xi) = [[exp([omega]x), V v], [0, 1]]``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from refusal import Refused

RIGID_TOL = 1e-4


class TransformError(Refused):
    """A transform or pose cannot be used; the message names it and the problem."""


def validate_rigid(T: Any, name: str = "pose", tol: float = RIGID_TOL) -> np.ndarray:
    """``T`` as a float64 (4, 4) rigid transform, or :class:`TransformError` naming the
    problem: not 4x4 numbers, NaN/inf, last row not [0, 0, 0, 1], rotation not orthonormal,
    or a reflection (det(R) != +1)."""
    if isinstance(T, torch.Tensor):
        T = T.detach().cpu().numpy()
    try:
        arr = np.asarray(T, dtype=np.float64)
    except (TypeError, ValueError):
        raise TransformError(f"{name} must be a 4x4 matrix of numbers") from None
    if arr.shape != (4, 4):
        raise TransformError(f"{name} must be a 4x4 matrix, got shape {tuple(arr.shape)}")
    if not np.all(np.isfinite(arr)):
        raise TransformError(f"{name} contains NaN or infinite values")
    if not np.allclose(arr[3], [0.0, 0.0, 0.0, 1.0], atol=tol):
        raise TransformError(
            f"{name} last row must be [0, 0, 0, 1] (the bottom row of a rigid transform), "
            f"got {arr[3].tolist()}"
        )
    R = arr[:3, :3]
    err = float(np.abs(R.T @ R - np.eye(3)).max())
    if err > tol:
        raise TransformError(
            f"{name} is not rigid: its rotation is not orthonormal (max |R^T R - I| = {err:.2g})"
        )
    det = float(np.linalg.det(R))
    if abs(det - 1.0) > tol:
        raise TransformError(
            f"{name} is not rigid: rotation determinant is {det:.3f}, expected +1 (a reflection?)"
        )
    return arr


def invert_rigid(T: Any) -> Any:
    """Inverse of a rigid 4x4 (NumPy or torch, batched on leading dims for torch)."""
    if isinstance(T, torch.Tensor):
        R = T[..., :3, :3]
        t = T[..., :3, 3:]
        Rt = R.transpose(-1, -2)
        out = torch.zeros_like(T)
        out[..., :3, :3] = Rt
        out[..., :3, 3:] = -Rt @ t
        out[..., 3, 3] = 1.0
        return out
    T = np.asarray(T, dtype=np.float64)
    out = np.eye(4)
    out[:3, :3] = T[:3, :3].T
    out[:3, 3] = -T[:3, :3].T @ T[:3, 3]
    return out


def compose(*transforms: Any) -> np.ndarray:
    """Matrix product left to right: ``compose(T_a_from_b, T_b_from_c) = T_a_from_c``."""
    out = np.eye(4)
    for T in transforms:
        out = out @ np.asarray(T, dtype=np.float64)
    return out


def apply(T: Any, points: Any) -> np.ndarray:
    """``T`` applied to (N, 3) or (3,) points (mm)."""
    T = np.asarray(T, dtype=np.float64)
    return np.asarray(points, dtype=np.float64) @ T[:3, :3].T + T[:3, 3]


def rotate(T: Any, vectors: Any) -> np.ndarray:
    """(N, 3) or (3,) direction vectors rotated by ``T`` (no translation)."""
    return np.asarray(vectors, dtype=np.float64) @ np.asarray(T, dtype=np.float64)[:3, :3].T


def orthonormalised(T: Any) -> np.ndarray:
    """``T`` with its rotation replaced by the nearest rotation (SVD), e.g. after an
    optimiser's update; the translation is kept."""
    out = np.array(T, dtype=np.float64, copy=True)
    U, _, Vt = np.linalg.svd(out[:3, :3])
    R = U @ Vt
    if np.linalg.det(R) < 0:
        U[:, -1] *= -1
        R = U @ Vt
    out[:3, :3] = R
    return out


# ---------------------------------------------------------------------- distances
def rotation_angle_deg(R_a: Any, R_b: Any) -> float:
    """Angle in degrees of the relative rotation ``R_a^T R_b`` (3x3 or 4x4 accepted)."""
    A = np.asarray(R_a, dtype=np.float64)[:3, :3]
    B = np.asarray(R_b, dtype=np.float64)[:3, :3]
    c = (np.trace(A.T @ B) - 1.0) / 2.0
    return math.degrees(math.acos(max(-1.0, min(1.0, c))))


def pose_distance(T_a: Any, T_b: Any) -> tuple[float, float]:
    """``(rotation angle in degrees, translation distance in mm)`` between two
    ``T_cam_from_world`` poses; the translation is the distance between the two source
    (camera centre) positions in world mm."""
    A = np.asarray(T_a, dtype=np.float64)
    B = np.asarray(T_b, dtype=np.float64)
    rot = rotation_angle_deg(A, B)
    src_a = -A[:3, :3].T @ A[:3, 3]
    src_b = -B[:3, :3].T @ B[:3, 3]
    return rot, float(np.linalg.norm(src_a - src_b))


def target_error_mm(points_world: Any, T_est: Any, T_true: Any) -> np.ndarray:
    """Per-point 3D target registration error (mm): ``|T_est X - T_true X|`` for (N, 3)
    LPS points; mTRE is its mean."""
    X = np.asarray(points_world, dtype=np.float64).reshape(-1, 3)
    A = np.asarray(T_est, dtype=np.float64)
    B = np.asarray(T_true, dtype=np.float64)
    pa = X @ A[:3, :3].T + A[:3, 3]
    pb = X @ B[:3, :3].T + B[:3, 3]
    return np.linalg.norm(pa - pb, axis=1)


# ---------------------------------------------------------------------- SE(3)
def hat(w: np.ndarray) -> np.ndarray:
    """Cross-product matrices: (..., 3) vectors -> (..., 3, 3), ``hat(w) @ x == w x x``."""
    w = np.asarray(w, dtype=np.float64)
    z = np.zeros_like(w[..., 0])
    return np.stack(
        [
            np.stack([z, -w[..., 2], w[..., 1]], -1),
            np.stack([w[..., 2], z, -w[..., 0]], -1),
            np.stack([-w[..., 1], w[..., 0], z], -1),
        ],
        -2,
    )


def _hat_torch(w: torch.Tensor) -> torch.Tensor:
    z = torch.zeros_like(w[..., 0])
    return torch.stack(
        [
            torch.stack([z, -w[..., 2], w[..., 1]], -1),
            torch.stack([w[..., 2], z, -w[..., 0]], -1),
            torch.stack([-w[..., 1], w[..., 0], z], -1),
        ],
        -2,
    )


def _se3_coeffs_torch(theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A = sin t / t, B = (1 - cos t)/t^2, C = (t - sin t)/t^3 with Taylor series near 0."""
    small = theta < 1e-3
    t = torch.where(small, torch.ones_like(theta), theta)
    t2 = theta * theta
    A = torch.where(small, 1 - t2 / 6 + t2 * t2 / 120, torch.sin(t) / t)
    B = torch.where(small, 0.5 - t2 / 24 + t2 * t2 / 720, (1 - torch.cos(t)) / (t * t))
    C = torch.where(small, 1.0 / 6 - t2 / 120 + t2 * t2 / 5040, (t - torch.sin(t)) / (t * t * t))
    return A, B, C


def se3_exp(xi: Any) -> Any:
    """Twist ``(omega, v)`` -> 4x4 rigid transform. NumPy (6,) -> (4, 4); torch (..., 6)
    -> (..., 4, 4), differentiable."""
    if isinstance(xi, torch.Tensor):
        w = xi[..., :3]
        v = xi[..., 3:]
        theta = torch.linalg.norm(w, dim=-1)
        A, B, C = _se3_coeffs_torch(theta)
        W = _hat_torch(w)
        W2 = W @ W
        eye = torch.eye(3, dtype=xi.dtype, device=xi.device).expand(W.shape)
        R = eye + A[..., None, None] * W + B[..., None, None] * W2
        V = eye + B[..., None, None] * W + C[..., None, None] * W2
        t = (V @ v.unsqueeze(-1)).squeeze(-1)
        top = torch.cat([R, t.unsqueeze(-1)], dim=-1)
        bottom = torch.zeros(*xi.shape[:-1], 1, 4, dtype=xi.dtype, device=xi.device)
        bottom[..., 0, 3] = 1.0
        return torch.cat([top, bottom], dim=-2)
    xi = np.asarray(xi, dtype=np.float64).reshape(6)
    out = se3_exp(torch.as_tensor(xi))
    return out.numpy()


def _so3_log_np(R: np.ndarray) -> np.ndarray:
    c = (np.trace(R) - 1.0) / 2.0
    theta = math.acos(max(-1.0, min(1.0, c)))
    if theta < 1e-6:
        return np.array([R[2, 1] - R[1, 2], R[0, 2] - R[2, 0], R[1, 0] - R[0, 1]]) / 2.0
    if math.pi - theta < 1e-4:
        # Near pi: axis from the symmetric part R = 2 n n^T - I (+ small correction).
        S = (R + np.eye(3)) / 2.0
        k = int(np.argmax(np.diag(S)))
        n = S[:, k] / math.sqrt(max(S[k, k], 1e-300))
        n /= np.linalg.norm(n)
        # choose the sign consistent with the antisymmetric part
        s = np.array([R[2, 1] - R[1, 2], R[0, 2] - R[2, 0], R[1, 0] - R[0, 1]])
        if np.dot(s, n) < 0:
            n = -n
        return theta * n
    w = np.array([R[2, 1] - R[1, 2], R[0, 2] - R[2, 0], R[1, 0] - R[0, 1]])
    return theta / (2.0 * math.sin(theta)) * w


def se3_log(T: Any) -> Any:
    """4x4 rigid transform -> twist ``(omega, v)``. NumPy (4, 4) -> (6,); torch (..., 4, 4)
    -> (..., 6) (differentiable away from rotations of pi)."""
    if isinstance(T, torch.Tensor):
        R = T[..., :3, :3]
        t = T[..., :3, 3]
        tr = R[..., 0, 0] + R[..., 1, 1] + R[..., 2, 2]
        cos_t = ((tr - 1) / 2).clamp(-1 + 1e-7, 1 - 1e-7)
        theta = torch.acos(cos_t)
        s = torch.stack(
            [R[..., 2, 1] - R[..., 1, 2], R[..., 0, 2] - R[..., 2, 0], R[..., 1, 0] - R[..., 0, 1]],
            -1,
        )
        small = theta < 1e-3
        th = torch.where(small, torch.ones_like(theta), theta)
        factor = torch.where(small, 0.5 + theta * theta / 12, th / (2 * torch.sin(th)))
        w = factor[..., None] * s
        A, B, C = _se3_coeffs_torch(theta)
        # V^{-1} = I - W/2 + (1/t^2)(1 - A/(2B)) W^2
        tb = torch.where(small, torch.ones_like(theta), theta)
        D = torch.where(small, 1.0 / 12 + theta * theta / 720, (1 - A / (2 * B)) / (tb * tb))
        W = _hat_torch(w)
        eye = torch.eye(3, dtype=T.dtype, device=T.device).expand(W.shape)
        Vinv = eye - 0.5 * W + D[..., None, None] * (W @ W)
        v = (Vinv @ t.unsqueeze(-1)).squeeze(-1)
        return torch.cat([w, v], dim=-1)
    T = np.asarray(T, dtype=np.float64)
    w = _so3_log_np(T[:3, :3])
    theta = float(np.linalg.norm(w))
    W = hat(w)
    if theta < 1e-6:
        D = 1.0 / 12
    else:
        A = math.sin(theta) / theta
        B = (1 - math.cos(theta)) / theta**2
        D = (1 - A / (2 * B)) / theta**2
    Vinv = np.eye(3) - 0.5 * W + D * (W @ W)
    return np.concatenate([w, Vinv @ T[:3, 3]])


def random_rotation(rot_deg: float, rng: np.random.Generator) -> np.ndarray:
    """Rotation of exactly ``rot_deg`` degrees about a uniformly random axis."""
    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    return se3_exp(np.concatenate([axis * math.radians(rot_deg), np.zeros(3)]))[:3, :3]


def perturb_pose(
    T: Any,
    rot_deg: float,
    trans_mm: float,
    rng: np.random.Generator,
    *,
    center_world: Any = None,
) -> np.ndarray:
    """Perturb ``T_cam_from_world`` by a rotation of exactly ``rot_deg`` degrees about a
    random axis through ``center_world`` (LPS mm; default the world origin, pass e.g. the
    CT centre) and a world translation of exactly ``trans_mm`` mm in a random direction.

    The perturbed pose sees the world moved by ``X -> R (X - c) + c + d``:
    ``T_new = T @ [[R, c - R c + d], [0, 1]]``.
    """
    T = validate_rigid(T)
    c = np.zeros(3) if center_world is None else np.asarray(center_world, float).reshape(3)
    R = random_rotation(rot_deg, rng)
    d = rng.normal(size=3)
    d = d / np.linalg.norm(d) * trans_mm
    D = np.eye(4)
    D[:3, :3] = R
    D[:3, 3] = c - R @ c + d
    return T @ D


def pose_distance_mm(T_a: np.ndarray, T_b: np.ndarray, centre: np.ndarray,
                     radius_mm: float = 50.0) -> float:
    """Mean distance (camera frame, mm) between the images under ``T_a`` and ``T_b`` of the
    six points ``centre +- radius_mm`` along the world axes (LPS mm)."""
    c = np.asarray(centre, dtype=np.float64).reshape(3)
    pts = np.concatenate([c + radius_mm * np.eye(3), c - radius_mm * np.eye(3)])
    Ta, Tb = np.asarray(T_a, np.float64), np.asarray(T_b, np.float64)
    pa = pts @ Ta[:3, :3].T + Ta[:3, 3]
    pb = pts @ Tb[:3, :3].T + Tb[:3, 3]
    return float(np.linalg.norm(pa - pb, axis=1).mean())
