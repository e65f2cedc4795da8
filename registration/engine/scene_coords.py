"""Scene coordinates: where each pixel's ray first enters and last leaves bone (no Django).

For every pixel of a camera at a pose ``T_cam_from_world``, the ray from the source
through the pixel centre is searched for the bone threshold (HU, trilinear) inside the
box of the bone voxels (HU >= threshold, grown by one voxel). Coarse samples are taken
either where the ray crosses the CT slices perpendicular to the volume axis most aligned
with the view ("planes", default: bilinear in each slice, which equals trilinear there,
one batched 2-D ``grid_sample``) or at equal steps along the ray ("steps"). The first
sample at or above the threshold (with a sample below it before) brackets the entry
crossing, the last one (with a sample below it after) the exit crossing; each crossing
is refined to sub-voxel precision by regula falsi on the trilinear HU along the ray.
Outputs are LPS mm.

Rays that never reach the threshold have ``mask = False`` and NaN entry/exit.
"""

from __future__ import annotations

import math
import weakref
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from geometry.rigid import validate_rigid


@dataclass
class SceneCoordinates:
    """``entry``/``exit`` (H, W, 3) (or (B, H, W, 3)) LPS mm float32 tensors (NaN where no
    bone), ``mask`` (H, W) bool: the pixel's ray hits bone."""

    entry: torch.Tensor
    exit: torch.Tensor
    mask: torch.Tensor

    def numpy(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return (
            self.entry.detach().cpu().numpy(),
            self.exit.detach().cpu().numpy(),
            self.mask.detach().cpu().numpy(),
        )


class SceneCoordinateRenderer:
    """Reusable scene-coordinate ray caster for one CT (keeps the HU volume on ``device``).

    Args:
        volume: CTVolume (``array`` (k, j, i) HU, ``affine`` voxel -> LPS mm).
        bone_threshold_hu: iso-value of the bone surface in HU.
        device: torch device.
        step_fraction: march step as a fraction of the smallest voxel size.
        max_points_per_chunk: samples per grid_sample call (memory bound).
    """

    def __init__(
        self,
        volume: Any,
        *,
        bone_threshold_hu: float = 200.0,
        device: str | torch.device = "cpu",
        step_fraction: float = 0.5,
        max_points_per_chunk: int = 1 << 22,
        method: str = "planes",
    ) -> None:
        if method not in ("planes", "steps"):
            raise ValueError(f"method must be 'planes' or 'steps', got {method!r}")
        self.method = method
        self._perm: dict = {}
        array = np.asarray(volume.array, dtype=np.float32)
        affine = np.asarray(volume.affine, dtype=np.float64)
        if array.ndim != 3 or min(array.shape) < 2:
            raise ValueError(f"CT array must be 3-D with >= 2 voxels per axis, got {array.shape}")
        self.device = torch.device(device)
        self.threshold = float(bone_threshold_hu)
        self.shape = array.shape
        self.max_points_per_chunk = int(max_points_per_chunk)
        k, j, i = array.shape
        spacing = np.linalg.norm(affine[:3, :3], axis=0)
        self.step_mm = float(step_fraction * spacing.min())
        N = np.diag([2.0 / (i - 1), 2.0 / (j - 1), 2.0 / (k - 1), 1.0])
        N[:3, 3] = -1.0
        self._norm_from_world = torch.as_tensor(
            N @ np.linalg.inv(affine), dtype=torch.float64, device=self.device
        )
        self._world_from_norm = torch.linalg.inv(self._norm_from_world)
        self._half = torch.as_tensor(
            [(i - 1) / 2.0, (j - 1) / 2.0, (k - 1) / 2.0], dtype=torch.float64, device=self.device
        )
        self._hu = torch.as_tensor(array, device=self.device)[None, None].contiguous()
        bone = array >= self.threshold
        self._box = None
        self._bone_range = None
        if bone.any():
            rng_lo, rng_hi = [], []
            for axis in (2, 1, 0):
                prof = np.flatnonzero(bone.any(axis=tuple(a for a in range(3) if a != axis)))
                rng_lo.append(int(prof[0]))
                rng_hi.append(int(prof[-1]))
            self._bone_range = (np.array(rng_lo), np.array(rng_hi))  # (i, j, k)
            lo, hi = [], []
            scale = np.array([2.0 / (i - 1), 2.0 / (j - 1), 2.0 / (k - 1)])
            for axis in (2, 1, 0):
                prof = np.flatnonzero(bone.any(axis=tuple(a for a in range(3) if a != axis)))
                n = array.shape[axis]
                lo.append(max(prof[0] - 1.0, 0.0))
                hi.append(min(prof[-1] + 1.0, n - 1.0))
            self._box = (
                torch.as_tensor(
                    np.array(lo) * scale - 1.0, dtype=torch.float64, device=self.device
                ),
                torch.as_tensor(
                    np.array(hi) * scale - 1.0, dtype=torch.float64, device=self.device
                ),
            )

    def _sample(self, pts_norm: torch.Tensor) -> torch.Tensor:
        """HU at (..., 3) normalised points (float32 sampling)."""
        shape = pts_norm.shape[:-1]
        flat = pts_norm.reshape(1, -1, 1, 1, 3).to(torch.float32)
        out = F.grid_sample(
            self._hu, flat, mode="bilinear", padding_mode="border", align_corners=True
        )
        return out.reshape(shape)

    def __call__(self, camera: Any, T_cam_from_world: Any) -> SceneCoordinates:
        T_np = np.asarray(
            T_cam_from_world.detach().cpu()
            if isinstance(T_cam_from_world, torch.Tensor)
            else T_cam_from_world,
            dtype=np.float64,
        )
        batched = T_np.ndim == 3
        Ts = T_np if batched else T_np[None]
        for b in range(Ts.shape[0]):
            validate_rigid(Ts[b], "T_cam_from_world")
        H, W = camera.height, camera.width
        B = Ts.shape[0]
        dev = self.device
        T = torch.as_tensor(Ts, dtype=torch.float64, device=dev)
        Kinv = torch.linalg.inv(
            torch.as_tensor(np.array(camera.K), dtype=torch.float64, device=dev)
        )
        vv, uu = torch.meshgrid(
            torch.arange(H, dtype=torch.float64, device=dev),
            torch.arange(W, dtype=torch.float64, device=dev),
            indexing="ij",
        )
        pix = torch.stack([uu, vv, torch.ones_like(uu)], -1).reshape(1, -1, 3)
        d_world = (pix @ Kinv.T) @ T[:, :3, :3]
        d_world = d_world / torch.linalg.norm(d_world, dim=-1, keepdim=True)  # (B, R, 3)
        src = -(T[:, :3, :3].transpose(1, 2) @ T[:, :3, 3:]).squeeze(-1)  # (B, 3)
        M = self._norm_from_world
        o = (src @ M[:3, :3].T + M[:3, 3])[:, None, :].expand(B, H * W, 3).reshape(-1, 3)
        d = (d_world @ M[:3, :3].T).reshape(-1, 3)
        src_w = src[:, None, :].expand(B, H * W, 3).reshape(-1, 3)
        dw = d_world.reshape(-1, 3)

        n_rays = o.shape[0]
        entry = torch.full((n_rays, 3), float("nan"), dtype=torch.float64, device=dev)
        exit_ = torch.full((n_rays, 3), float("nan"), dtype=torch.float64, device=dev)
        mask = torch.zeros(n_rays, dtype=torch.bool, device=dev)
        if self._box is not None:
            lo, hi = self._box
            d_safe = torch.where(d.abs() < 1e-15, torch.full_like(d, 1e-15), d)
            t1 = (lo - o) / d_safe
            t2 = (hi - o) / d_safe
            t_near = torch.minimum(t1, t2).amax(-1).clamp_min(0.0)
            t_far = torch.maximum(t1, t2).amin(-1)
            hit_box = t_far > t_near
            R = H * W
            for b in range(B):
                rays = torch.nonzero(hit_box[b * R : (b + 1) * R]).squeeze(-1) + b * R
                if not rays.numel():
                    continue
                if self.method == "planes":
                    axis = int(torch.argmax(d[rays].mean(dim=0).abs() * self._half).item())
                    P = self._planes(axis)[0].shape[0]
                    chunk = max(1, self.max_points_per_chunk // P)
                    for start in range(0, rays.numel(), chunk):
                        sel = rays[start : start + chunk]
                        t, vals, valid = self._coarse_planes(sel, o, d, axis)
                        self._finish(sel, o, d, t, vals, valid, src_w, dw, entry, exit_, mask)
                else:
                    max_len = float((t_far - t_near)[rays].max())
                    n_steps = int(math.ceil(max_len / self.step_mm)) + 2
                    chunk = max(1, self.max_points_per_chunk // n_steps)
                    for start in range(0, rays.numel(), chunk):
                        sel = rays[start : start + chunk]
                        t, vals, valid = self._coarse_steps(sel, o, d, t_near, t_far, n_steps)
                        self._finish(sel, o, d, t, vals, valid, src_w, dw, entry, exit_, mask)
        shape = (B, H, W)
        out = SceneCoordinates(
            entry.reshape(*shape, 3).to(torch.float32),
            exit_.reshape(*shape, 3).to(torch.float32),
            mask.reshape(shape),
        )
        if not batched:
            out = SceneCoordinates(out.entry[0], out.exit[0], out.mask[0])
        return out

    # layout per marching index axis (0 = i, 1 = j, 2 = k): permutation of the (k, j, i)
    # array putting that axis first, and the index axes of the grid's x and y
    _PLANE_LAYOUT = {2: ((0, 1, 2), 0, 1), 1: ((1, 0, 2), 0, 2), 0: ((2, 0, 1), 1, 2)}

    def _planes(self, axis: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(slices (P, 1, Hs, Ws) of HU + 1024 around the bone range, positions (P,))."""
        hit = self._perm.get(axis)
        if hit is not None:
            return hit
        vol = (self._hu[0, 0] + 1024.0).permute(*self._PLANE_LAYOUT[axis][0])
        lo, hi = self._bone_range
        first = max(int(lo[axis]) - 1, 0)
        last = min(int(hi[axis]) + 1, vol.shape[0] - 1)
        slab = vol[first : last + 1].unsqueeze(1).contiguous()
        pos = torch.arange(first, last + 1, dtype=torch.float64, device=self.device)
        self._perm[axis] = (slab, pos)
        return slab, pos

    def _coarse_planes(self, sel, o, d, axis: int):
        """HU where each ray crosses the slices perpendicular to ``axis`` (bilinear in the
        slice = trilinear there), ordered by distance from the source."""
        slab, pos = self._planes(axis)
        _, ax_x, ax_y = self._PLANE_LAYOUT[axis]
        half = self._half
        o_idx = (o[sel] + 1.0) * half  # (n, 3) index coordinates
        d_idx = d[sel] * half  # (n, 3) index units per mm
        da = d_idx[:, axis]
        da = torch.where(da.abs() < 1e-15, torch.full_like(da, 1e-15), da)
        t = (pos[None, :] - o_idx[:, axis, None]) / da[:, None]  # (n, P) mm
        # grid (P, n, 1, 2), contiguous, affine in the plane position
        ratio = d_idx[:, [ax_x, ax_y]] / da[:, None]  # (n, 2)
        scale = 1.0 / half[[ax_x, ax_y]]
        beta = (ratio * scale).to(slab.dtype)
        alpha = ((o_idx[:, [ax_x, ax_y]] - o_idx[:, axis, None] * ratio) * scale - 1.0).to(
            slab.dtype
        )
        grid = torch.addcmul(alpha[None], pos.to(slab.dtype)[:, None, None], beta[None])
        vals = (
            F.grid_sample(
                slab, grid.unsqueeze(2), mode="bilinear", padding_mode="zeros", align_corners=True
            )[:, 0, :, 0].t()
            - 1024.0
        )  # (n, P) HU, -1024 outside
        neg = (da < 0)[:, None]
        t = torch.where(neg, t.flip(1), t)
        vals = torch.where(neg, vals.flip(1), vals)
        return t, vals, t > 0

    def _coarse_steps(self, sel, o, d, t_near, t_far, n_steps):
        """HU at equal steps of ``step_mm`` along each ray from its box entry."""
        dev = self.device
        on, dn = o[sel], d[sel]
        tn, tf = t_near[sel], t_far[sel]
        s = torch.arange(n_steps, dtype=torch.float64, device=dev)
        t = tn[:, None] + s[None, :] * self.step_mm  # (n, S) mm
        valid = t <= tf[:, None] + 1e-9
        vals = self._sample(on[:, None, :] + t[..., None] * dn[:, None, :])
        return t, vals, valid

    def _finish(self, sel, o, d, t, vals, valid, src_w, dw, entry, exit_, mask) -> None:
        """First/last bone crossings from coarse samples (ascending t), refined by regula
        falsi on the trilinear HU."""
        dev = self.device
        thr = self.threshold
        on, dn = o[sel], d[sel]
        above = (vals >= thr) & valid
        hit = above.any(-1)
        if not bool(hit.any()):
            return
        n_s = above.shape[1]
        ar = torch.arange(n_s, device=dev)
        first = torch.where(above, ar, n_s).amin(-1)
        last = torch.where(above, ar, -1).amax(-1)
        rows = torch.nonzero(hit).squeeze(-1)

        def refine(i_in: torch.Tensor, i_out: torch.Tensor) -> torch.Tensor:
            """Crossing between sample i_out (below) and i_in (above), regula falsi."""
            r = rows
            a = t[r, i_out.clamp(0, n_s - 1)]
            b = t[r, i_in]
            fa = vals[r, i_out.clamp(0, n_s - 1)].to(torch.float64) - thr
            fb = vals[r, i_in].to(torch.float64) - thr
            # a sample at the very start of the clipped segment is already in bone
            no_bracket = (
                (i_out < 0) | (i_out >= n_s) | (fa >= 0) | ~valid[r, i_out.clamp(0, n_s - 1)]
            )
            for _ in range(4):
                denom = torch.where((fb - fa).abs() < 1e-12, torch.ones_like(fa), fb - fa)
                c = a - fa * (b - a) / denom
                c = torch.where(no_bracket, b, c)
                fc = self._sample(on[r] + c[:, None] * dn[r]).to(torch.float64) - thr
                below = fc < 0
                a = torch.where(below, c, a)
                fa = torch.where(below, fc, fa)
                b = torch.where(below, b, c)
                fb = torch.where(below, fb, fc)
            denom = torch.where((fb - fa).abs() < 1e-12, torch.ones_like(fa), fb - fa)
            c = a - fa * (b - a) / denom
            return torch.where(no_bracket, b, c)

        t_entry = refine(first[rows], first[rows] - 1)
        t_exit = refine(last[rows], last[rows] + 1)
        g = sel[rows]
        entry[g] = src_w[g] + t_entry[:, None] * dw[g]
        exit_[g] = src_w[g] + t_exit[:, None] * dw[g]
        mask[g] = True


# last ray caster: (key, weak reference to the volume's array, renderer); the weak
# reference guards against a new array reusing a freed array's id
_CACHE: dict[tuple, tuple[Any, SceneCoordinateRenderer]] = {}


def scene_coordinates(
    volume: Any,
    camera: Any,
    T_cam_from_world: Any,
    *,
    bone_threshold_hu: float = 200.0,
    device: str = "cpu",
    step_fraction: float = 0.5,
    method: str = "planes",
) -> SceneCoordinates:
    """Entry/exit bone points (LPS mm) and hit mask per pixel for one pose (4, 4) or a batch
    (B, 4, 4). The ray caster for the last volume used is cached (keyed by the array's
    identity, threshold, device and step), so calling this in a training loop is cheap.
    ``method="planes"`` (default) finds the crossings from the HU where each ray crosses
    the CT slices (one sample per slice along the axis most aligned with the view, 2-D
    interpolation, fast); ``"steps"`` marches in steps of ``step_fraction`` times the
    smallest voxel size (slower, finer for structures thinner than a slice)."""
    key = (id(volume.array), float(bone_threshold_hu), str(device), float(step_fraction), method)
    hit = _CACHE.get(key)
    renderer = None
    if hit is not None and hit[0]() is volume.array:
        renderer = hit[1]
    if renderer is None:
        _CACHE.clear()
        renderer = SceneCoordinateRenderer(
            volume,
            bone_threshold_hu=bone_threshold_hu,
            device=device,
            step_fraction=step_fraction,
            method=method,
        )
        try:
            ref = weakref.ref(volume.array)
        except TypeError:  # not weak-referenceable: do not cache
            return renderer(camera, T_cam_from_world)
        _CACHE[key] = (ref, renderer)
    return renderer(camera, T_cam_from_world)
