"""Ray geometry of the DRR renderer and its ``"rays"`` sampling scheme, no Django imports.

Poses ``T_cam_from_world`` (world = LPS mm) and intrinsics ``K`` (pixels) as in
:mod:`geometry.camera`; rays leave the source through pixel centres. The ``"rays"``
scheme clips each ray to the content box and samples it at ``samples_per_ray`` equal
sub-interval midpoints with trilinear 3-D ``grid_sample`` (see
:mod:`registration.engine.drr`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def prepare_pose(
    T: torch.Tensor, K: torch.Tensor, dtype: torch.dtype, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """``(T (B, 4, 4), K (B, 3, 3), B)`` from a pose and intrinsics, single or batched,
    broadcast to one batch; ValueError naming the problem when they do not fit."""
    T = torch.as_tensor(T, dtype=dtype, device=device)
    K = torch.as_tensor(K, dtype=dtype, device=device)
    if T.ndim == 2:
        T = T.unsqueeze(0)
    if K.ndim == 2:
        K = K.unsqueeze(0)
    if T.ndim != 3 or T.shape[-2:] != (4, 4):
        raise ValueError(f"T_cam_from_world must be (4, 4) or (B, 4, 4), got {tuple(T.shape)}")
    if K.ndim != 3 or K.shape[-2:] != (3, 3):
        raise ValueError(f"K must be (3, 3) or (B, 3, 3), got {tuple(K.shape)}")
    B = max(T.shape[0], K.shape[0])
    if T.shape[0] not in (1, B) or K.shape[0] not in (1, B):
        raise ValueError(f"batch sizes of T ({T.shape[0]}) and K ({K.shape[0]}) differ")
    if not bool(torch.isfinite(T).all()) or not bool(torch.isfinite(K).all()):
        raise ValueError("pose or intrinsics contain NaN or infinite values")
    return T.expand(B, 4, 4), K.expand(B, 3, 3), B


def patch_window(
    height: int, width: int, patch: tuple[int, int, int, int] | None
) -> tuple[int, int, int, int]:
    """``(u0, v0, w, h)`` pixels of the rendered window: ``patch`` checked against the
    image, or the whole ``width x height`` image."""
    if patch is None:
        u0, v0, w, h = 0, 0, int(width), int(height)
    else:
        if len(patch) != 4:
            raise ValueError("patch must be (u0, v0, w, h)")
        u0, v0, w, h = (int(x) for x in patch)
        if w <= 0 or h <= 0 or u0 < 0 or v0 < 0 or u0 + w > width or v0 + h > height:
            raise ValueError(f"patch {tuple(patch)} is not inside the {width}x{height} image")
    if w <= 0 or h <= 0:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    return u0, v0, w, h


def normalised_rays(
    T: torch.Tensor,
    K: torch.Tensor,
    window: tuple[int, int, int, int],
    norm_from_world: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(origin (B, 1, 3), direction (B, R, 3), mm_per_t (B, R))`` in normalised grid
    coordinates (``norm_from_world`` 4x4 from LPS mm) for the pixels of ``window = (u0,
    v0, w, h)``; ``T`` (B, 4, 4), ``K`` (B, 3, 3). The world direction is unit length, so
    the ray parameter ``t`` is in mm and ``direction`` is the per-mm step."""
    u0, v0, w, h = window
    vs = torch.arange(v0, v0 + h, dtype=T.dtype, device=T.device)
    us = torch.arange(u0, u0 + w, dtype=T.dtype, device=T.device)
    vv, uu = torch.meshgrid(vs, us, indexing="ij")
    pix = torch.stack([uu, vv, torch.ones_like(uu)], dim=-1).reshape(1, -1, 3)
    d_cam = pix @ torch.linalg.inv(K).transpose(-1, -2)  # (B, R, 3)
    R = T[:, :3, :3]
    t = T[:, :3, 3:]
    d_world = d_cam @ R  # rows: R^T d
    d_world = d_world / torch.linalg.norm(d_world, dim=-1, keepdim=True)
    src = -(R.transpose(-1, -2) @ t)  # (B, 3, 1)
    M = norm_from_world
    o = (M[:3, :3] @ src).squeeze(-1) + M[:3, 3]  # (B, 3)
    d = d_world @ M[:3, :3].T  # (B, R, 3)
    return o.unsqueeze(1), d, torch.ones_like(d[..., 0])


def render_rays(
    vol: torch.Tensor,
    box: tuple[torch.Tensor, torch.Tensor],
    o: torch.Tensor,
    d: torch.Tensor,
    samples_per_ray: int,
    max_points_per_chunk: int,
) -> torch.Tensor:
    """``(B * R,)`` line integrals: equidistant trilinear samples of ``vol`` (1, 1, k, j, i)
    mm^-1 on each ray (``o`` (B, 1, 3), ``d`` (B, R, 3) per mm, normalised coordinates)
    clipped to the normalised content ``box = (lo, hi)``."""
    B, R = d.shape[0], d.shape[1]
    lo, hi = box
    # slab intersection in normalised coordinates (t in mm along the ray)
    d_safe = torch.where(d.abs() < 1e-12, torch.full_like(d, 1e-12), d)
    inv = 1.0 / d_safe
    t1 = (lo - o) * inv
    t2 = (hi - o) * inv
    t_near = torch.minimum(t1, t2).amax(dim=-1).clamp_min(0.0)
    t_far = torch.maximum(t1, t2).amin(dim=-1)
    length = (t_far - t_near).clamp_min(0.0)  # (B, R) mm
    step = length / samples_per_ray
    frac = torch.arange(samples_per_ray, dtype=vol.dtype, device=vol.device) + 0.5
    o_flat = o.expand(B, R, 3).reshape(-1, 3)
    d_flat = d.reshape(-1, 3)
    tn_flat = t_near.reshape(-1)
    st_flat = step.reshape(-1)
    n_rays = B * R
    chunk = max(1, max_points_per_chunk // samples_per_ray)
    pieces = []
    for start in range(0, n_rays, chunk):
        sl = slice(start, min(start + chunk, n_rays))
        # t = t_near + (s + 0.5) * step  -> positions (n, S, 3)
        tt = tn_flat[sl, None] + frac[None, :] * st_flat[sl, None]
        pts = o_flat[sl, None, :] + tt[..., None] * d_flat[sl, None, :]
        grid = pts.reshape(1, -1, samples_per_ray, 1, 3)
        vals = F.grid_sample(
            vol, grid, mode="bilinear", padding_mode="border", align_corners=True
        )  # (1, 1, n, S, 1)
        pieces.append(vals[0, 0, :, :, 0].sum(dim=-1) * st_flat[sl])
    return torch.cat(pieces) if len(pieces) > 1 else pieces[0]
