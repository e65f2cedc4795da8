"""Scene coordinates: where each pixel's ray first enters and last leaves bone (no Django).

For every pixel of a camera at a pose ``T_cam_from_world``, the ray from the source
through the pixel centre is marched through the CT (HU, trilinear) inside the box of the
bone voxels (HU >= threshold, grown by one voxel). The first sample at or above the
threshold (with a sample below it before) brackets the entry crossing, the last one
(with a sample below it after) the exit crossing; each crossing is refined to sub-voxel
precision by regula falsi on the trilinear HU along the ray. Outputs are LPS mm.

Rays that never reach the threshold have ``mask = False`` and NaN entry/exit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from registration.engine.pose import validate_rigid


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
    ) -> None:
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
        self._hu = torch.as_tensor(array, device=self.device)[None, None].contiguous()
        bone = array >= self.threshold
        self._box = None
        if bone.any():
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
            idx_hit = torch.nonzero(hit_box).squeeze(-1)
            if idx_hit.numel():
                max_len = float((t_far - t_near)[idx_hit].max())
                n_steps = int(math.ceil(max_len / self.step_mm)) + 2
                chunk = max(1, self.max_points_per_chunk // n_steps)
                for start in range(0, idx_hit.numel(), chunk):
                    sel = idx_hit[start : start + chunk]
                    self._march(sel, o, d, t_near, t_far, n_steps, src_w, dw, entry, exit_, mask)
        shape = (B, H, W)
        out = SceneCoordinates(
            entry.reshape(*shape, 3).to(torch.float32),
            exit_.reshape(*shape, 3).to(torch.float32),
            mask.reshape(shape),
        )
        if not batched:
            out = SceneCoordinates(out.entry[0], out.exit[0], out.mask[0])
        return out

    def _march(self, sel, o, d, t_near, t_far, n_steps, src_w, dw, entry, exit_, mask) -> None:
        dev = self.device
        thr = self.threshold
        on, dn = o[sel], d[sel]
        tn, tf = t_near[sel], t_far[sel]
        s = torch.arange(n_steps, dtype=torch.float64, device=dev)
        t = tn[:, None] + s[None, :] * self.step_mm  # (n, S) mm
        valid = t <= tf[:, None] + 1e-9
        vals = self._sample(on[:, None, :] + t[..., None] * dn[:, None, :])
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
            no_bracket = (i_out < 0) | (i_out >= n_s) | (fa >= 0)
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


_CACHE: dict[tuple, SceneCoordinateRenderer] = {}


def scene_coordinates(
    volume: Any,
    camera: Any,
    T_cam_from_world: Any,
    *,
    bone_threshold_hu: float = 200.0,
    device: str = "cpu",
    step_fraction: float = 0.5,
) -> SceneCoordinates:
    """Entry/exit bone points (LPS mm) and hit mask per pixel for one pose (4, 4) or a batch
    (B, 4, 4). The ray caster for the last volume used is cached (keyed by the array's
    identity, threshold, device and step), so calling this in a training loop is cheap.
    ``step_fraction`` is the march step in units of the smallest voxel size (1.0 is about
    twice as fast; features thinner than a step may be missed)."""
    key = (id(volume.array), float(bone_threshold_hu), str(device), float(step_fraction))
    renderer = _CACHE.get(key)
    if renderer is None:
        _CACHE.clear()
        renderer = SceneCoordinateRenderer(
            volume, bone_threshold_hu=bone_threshold_hu, device=device, step_fraction=step_fraction
        )
        _CACHE[key] = renderer
    return renderer(camera, T_cam_from_world)
