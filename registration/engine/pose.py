"""Rigid poses, C-arm angles and pose error measures (no Django imports).

A pose is ``T_cam_from_world`` (4x4): LPS world mm -> camera mm (camera axes as in
docs/CONVENTIONS.md: +x columns, +y rows, +z source -> detector).

C-arm angle convention used by :func:`carm_pose` (patient supine, head first):

* LAO = RAO = 0 and cranial = caudal = 0 is the AP view: the source is posterior
  (under the table), the detector anterior, so the viewing direction (camera +z) is
  ``-y`` (anterior) in LPS. Image rows run toward the feet (camera +y = ``-z``, inferior)
  and image columns toward the patient's right (camera +x = ``-x``), which is the
  image a viewer at the source sees.
* ``lao_deg`` > 0: LAO, the detector swings toward the patient's left (at LAO 90 the
  view direction is ``+x``, the source is on the patient's right). RAO is negative.
* ``cranial_deg`` > 0: cranial, the detector tilts toward the head (the view direction
  gains a ``+z`` component). Caudal is negative.
* ``in_plane_deg``: rotation of the image about the viewing axis (camera +z), applied
  last, positive turns camera +x toward camera +y.
* The rotation is ``R_world_from_cam = Rz(lao) @ Rx(-cranial) @ B @ Rz(in_plane)`` with
  ``B`` the AP orientation above; the source sits ``source_to_isocenter_mm`` before the
  isocentre along the viewing direction.
* ``table_offset_mm``: the table (with the patient) moved by this LPS vector relative to
  the C-arm, so the isocentre in patient coordinates is ``isocenter_lps - table_offset``.

Twists (``se3_exp``/``se3_log``): ``xi = (omega (3), v (3))`` with ``omega`` a rotation
vector in radians and ``v`` the translational part in mm;
``exp(xi) = [[exp([omega]x), V v], [0, 1]]``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

# AP orientation: columns are camera x, y, z expressed in LPS.
_B_AP = np.array([[-1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, -1.0, 0.0]]).T


def _rot_x(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def _rot_z(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def validate_rigid(T: Any, name: str = "pose", tol: float = 1e-4) -> np.ndarray:
    """Check that ``T`` is a finite 4x4 rigid transform; return it as float64 NumPy.

    Raises ValueError with a one-line message: not 4x4, NaN/inf, bottom row not
    [0, 0, 0, 1], rotation not orthonormal, or det(R) != 1 (a reflection).
    """
    if isinstance(T, torch.Tensor):
        T = T.detach().cpu().numpy()
    try:
        arr = np.asarray(T, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a 4x4 numeric matrix") from exc
    if arr.shape != (4, 4):
        raise ValueError(f"{name} must be a 4x4 matrix, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values")
    if not np.allclose(arr[3], [0.0, 0.0, 0.0, 1.0], atol=tol):
        raise ValueError(f"{name} bottom row must be [0, 0, 0, 1], got {arr[3].tolist()}")
    R = arr[:3, :3]
    err = np.abs(R.T @ R - np.eye(3)).max()
    if err > tol:
        raise ValueError(f"{name} rotation is not orthonormal (max |R^T R - I| = {err:.2g})")
    det = float(np.linalg.det(R))
    if abs(det - 1.0) > tol:
        raise ValueError(f"{name} rotation has determinant {det:.4g}, expected 1 (no reflections)")
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


# ---------------------------------------------------------------------- C-arm angles
def carm_pose(
    lao_deg: float,
    cranial_deg: float,
    source_to_isocenter_mm: float,
    isocenter_lps: Any,
    table_offset_mm: Any = (0.0, 0.0, 0.0),
    in_plane_deg: float = 0.0,
) -> np.ndarray:
    """``T_cam_from_world`` (4x4 float64) for clinical C-arm parameters (see module doc).

    Args:
        lao_deg: LAO (+) / RAO (-) angle in degrees.
        cranial_deg: cranial (+) / caudal (-) angle in degrees.
        source_to_isocenter_mm: distance from the source to the isocentre (mm, > 0).
        isocenter_lps: isocentre in LPS mm (table offset zero).
        table_offset_mm: table translation in LPS mm; isocentre becomes ``iso - offset``.
        in_plane_deg: image rotation about the viewing axis in degrees.
    """
    if not (math.isfinite(source_to_isocenter_mm) and source_to_isocenter_mm > 0):
        raise ValueError(f"source_to_isocenter_mm must be positive, got {source_to_isocenter_mm}")
    iso = np.asarray(isocenter_lps, dtype=np.float64).reshape(3)
    off = np.asarray(table_offset_mm, dtype=np.float64).reshape(3)
    for name, v in (
        ("lao_deg", lao_deg),
        ("cranial_deg", cranial_deg),
        ("in_plane_deg", in_plane_deg),
    ):
        if not math.isfinite(float(v)):
            raise ValueError(f"{name} must be finite, got {v}")
    if not (np.all(np.isfinite(iso)) and np.all(np.isfinite(off))):
        raise ValueError("isocenter_lps and table_offset_mm must be finite")
    R_wc = (
        _rot_z(math.radians(lao_deg))
        @ _rot_x(-math.radians(cranial_deg))
        @ _B_AP
        @ _rot_z(math.radians(in_plane_deg))
    )
    iso_patient = iso - off
    source = iso_patient - source_to_isocenter_mm * R_wc[:, 2]
    T = np.eye(4)
    T[:3, :3] = R_wc.T
    T[:3, 3] = -R_wc.T @ source
    return T


def carm_angles_from_pose(T_cam_from_world: Any, source_to_isocenter_mm: float) -> dict:
    """Inverse of :func:`carm_pose` (table offset taken as zero).

    Returns ``{"lao_deg", "cranial_deg", "in_plane_deg", "isocenter_lps" (3,)}``: the
    isocentre is the point ``source_to_isocenter_mm`` along the viewing axis. At
    cranial = +-90 degrees LAO is undefined and reported as 0.
    """
    T = validate_rigid(T_cam_from_world)
    R_wc = T[:3, :3].T
    d = R_wc[:, 2]
    cranial = math.asin(max(-1.0, min(1.0, d[2])))
    if math.hypot(d[0], d[1]) < 1e-12:
        lao = 0.0
    else:
        lao = math.atan2(d[0], -d[1])
    M = _B_AP.T @ _rot_x(cranial) @ _rot_z(-lao) @ R_wc  # = Rz(in_plane)
    in_plane = math.atan2(M[1, 0], M[0, 0])
    source = -R_wc @ T[:3, 3]
    iso = source + source_to_isocenter_mm * d
    return {
        "lao_deg": math.degrees(lao),
        "cranial_deg": math.degrees(cranial),
        "in_plane_deg": math.degrees(in_plane),
        "isocenter_lps": iso,
    }


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
