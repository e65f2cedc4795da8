"""Plane (Joseph-style) sampling of the DRR renderer, no Django imports.

For each pose the volume index axis most aligned with the mean viewing direction is the
marching axis; rays are sampled where they cross the planes perpendicular to it (the
content slices, or ``samples_per_ray`` planes resampled linearly between them), bilinear
in-plane with one batched 2-D ``grid_sample`` per chunk. Step length = plane spacing /
|cos| of the ray to the axis, in mm. See :mod:`registration.engine.drr`.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


class PlaneSampling:
    """The ``"planes"`` scheme of :class:`registration.engine.drr.DrrRenderer`, which sets
    the attributes below; keeps the cropped, permuted volumes per marching axis and a
    least-recently-used cache of resampled plane slabs (``plane_cache_bytes``)."""

    dtype: torch.dtype
    device: torch.device
    shape: tuple[int, ...]  # (k, j, i)
    plane_sampling: str  # "slices" or "exact"
    plane_cache_bytes: int
    max_points_per_chunk: int
    last_samples_per_ray: int
    _mu: torch.Tensor  # (1, 1, k, j, i) mm^-1
    _mu_bone: torch.Tensor
    _idx_from_world: torch.Tensor  # 4x4 voxel index (i, j, k) from LPS mm
    _content_idx: dict[bool, tuple[np.ndarray, np.ndarray] | None]
    _perm_cache: dict
    _plane_cache: dict
    _plane_cache_used: int

    # For index axis a (0 = i, 1 = j, 2 = k): the permutation of the (k, j, i) volume that
    # puts axis a first, and the index axes that become the grid's x (last dim) and y.
    _PLANE_LAYOUT = {2: ((0, 1, 2), 0, 1), 1: ((1, 0, 2), 0, 2), 0: ((2, 0, 1), 1, 2)}

    def _permuted(self, axis: int, bone_only: bool) -> tuple[torch.Tensor, tuple[int, int, int]]:
        """The volume with ``axis`` first, cropped to the content's index box (outside it
        ``mu`` is exactly 0, as zeros padding reads it), and the crop's first index along
        (axis, grid y axis, grid x axis). Cached per (axis, bone_only)."""
        key = (axis, bone_only)
        hit = self._perm_cache.get(key)
        if hit is not None:
            return hit
        perm, gx, gy = self._PLANE_LAYOUT[axis]
        lo, hi = self._content_idx[bone_only]
        # (k, j, i) slices of the content box and one voxel more each side (so that every
        # side has at least 2 voxels for align_corners); index axis a is dimension 2 - a
        n_idx = self.shape[::-1]
        first = [max(int(lo[a]) - 1, 0) for a in range(3)]
        box = [slice(None)] * 3
        for a in range(3):
            box[2 - a] = slice(first[a], min(int(hi[a]) + 2, n_idx[a]))
        src = (self._mu_bone if bone_only else self._mu)[0, 0][tuple(box)]
        vol = src.permute(*perm).contiguous()
        out = (vol, (first[axis], first[gy], first[gx]))
        self._perm_cache[key] = out
        return out

    def _planes(
        self, axis: int, samples: int, bone_only: bool
    ) -> tuple[torch.Tensor, torch.Tensor, float, tuple[int, int]]:
        """``(slab (P, 1, Hs, Ws), positions (P,) in index units along axis, spacing, (first
        grid-y index, first grid-x index) of the slab)``: the content slices along ``axis``
        or, when fewer samples are asked for, ``samples`` planes resampled linearly between
        slices; in-plane, the slab covers the content's box only. Kept in a
        least-recently-used cache of at most ``plane_cache_bytes``."""
        key = (axis, samples, bone_only)
        hit = self._plane_cache.pop(key, None)
        if hit is not None:
            self._plane_cache[key] = hit  # most recently used last
            return hit
        vol, (a0, y0, x0) = self._permuted(axis, bone_only)
        lo, hi = self._content_idx[bone_only]
        first, last = int(lo[axis]), int(hi[axis])
        n_content = last - first + 1
        if samples == n_content or (samples > n_content and self.plane_sampling == "slices"):
            slab = vol[first - a0 : last + 1 - a0]
            pos = torch.arange(first, last + 1, dtype=self.dtype, device=self.device)
            spacing = 1.0
        else:
            # midpoints of ``samples`` equal parts of [first - 1, last + 1], the support of
            # the interpolated content along the axis; slices beyond the content are 0
            spacing = (n_content + 1) / samples
            pos = (first - 1.0) + (torch.arange(samples, dtype=torch.float64) + 0.5) * spacing
            f = torch.floor(pos).long() - a0  # index into the cropped volume
            wgt = (pos - torch.floor(pos)).to(self.dtype).to(self.device)[:, None, None]
            n = vol.shape[0]
            ok0 = ((f >= 0) & (f <= n - 1)).to(self.dtype).to(self.device)[:, None, None]
            ok1 = ((f + 1 >= 0) & (f + 1 <= n - 1)).to(self.dtype).to(self.device)[:, None, None]
            i0 = f.clamp(0, n - 1).to(self.device)
            i1 = (f + 1).clamp(0, n - 1).to(self.device)
            slab = (1 - wgt) * ok0 * vol[i0] + wgt * ok1 * vol[i1]
            pos = pos.to(self.dtype).to(self.device)
        out = (slab.unsqueeze(1).contiguous(), pos, float(spacing), (y0, x0))
        size = out[0].numel() * out[0].element_size()
        while self._plane_cache and self._plane_cache_used + size > self.plane_cache_bytes:
            old = self._plane_cache.pop(next(iter(self._plane_cache)))
            self._plane_cache_used -= old[0].numel() * old[0].element_size()
        if size <= self.plane_cache_bytes:
            self._plane_cache[key] = out
            self._plane_cache_used += size
        return out

    def _render_planes(
        self,
        T: torch.Tensor,
        K: torch.Tensor,
        patch: tuple[int, int, int, int],
        samples_per_ray: int,
        bone_only: bool,
    ) -> torch.Tensor:
        """Samples where each ray crosses the planes perpendicular to the volume axis most
        aligned with the pose's viewing direction (bilinear in-plane, 2-D grid_sample).

        ``T`` (B, 4, 4), ``K`` (B, 3, 3), ``patch = (u0, v0, w, h)`` pixels. The ray through
        pixel ``p = (u, v, 1)`` has the world direction ``G p`` with ``G = R^T K^-1``; in
        voxel index units ``C p`` with ``C = A^-1 G`` (``A`` the affine's 3x3). Planes need
        only the ratios of its components and its length, so no per-ray vectors are built.
        Returns ``(B * h * w,)`` line integrals."""
        B = T.shape[0]
        u0, v0, w, h = patch
        vs = torch.arange(v0, v0 + h, dtype=self.dtype, device=self.device)
        us = torch.arange(u0, u0 + w, dtype=self.dtype, device=self.device)
        vv, uu = torch.meshgrid(vs, us, indexing="ij")
        uu, vv = uu.reshape(1, -1), vv.reshape(1, -1)  # (1, R)
        R_ = h * w
        G = T[:, :3, :3].transpose(-1, -2) @ torch.linalg.inv(K)  # (B, 3, 3)
        C = self._idx_from_world[:3, :3] @ G

        def rows(Mx: torch.Tensor, r: int) -> torch.Tensor:  # (B, R): row r of Mx times p
            return torch.addcmul(torch.addcmul(Mx[:, r, 2:3], Mx[:, r, 0:1], uu), Mx[:, r, 1:2], vv)

        length = torch.sqrt(sum(rows(G, r) ** 2 for r in range(3)))  # |G p|, (B, R)
        src = -(T[:, :3, :3].transpose(-1, -2) @ T[:, :3, 3:])  # (B, 3, 1) world
        o_idx = (self._idx_from_world[:3, :3] @ src).squeeze(-1) + self._idx_from_world[:3, 3]
        self.last_samples_per_ray = 0
        # marching axis per pose: the largest component of the mean unit ray direction in
        # index units (linear in p / |G p|), one host sync for the whole batch
        with torch.no_grad():
            q = torch.stack([uu.expand(B, -1), vv.expand(B, -1), torch.ones_like(length)], -1)
            mean_dir = (C @ (q / length[..., None]).mean(dim=1)[..., None]).squeeze(-1)
            axes = torch.argmax(mean_dir.abs(), dim=-1).tolist()
        out = torch.empty(B, R_, dtype=self.dtype, device=self.device) if B > 1 else None
        results = []
        for axis in sorted(set(axes)):
            members = [b for b in range(B) if axes[b] == axis]
            sel = None if len(members) == B else torch.as_tensor(members, device=self.device)
            _, gx_axis_idx, gy_axis_idx = self._PLANE_LAYOUT[axis]
            slab, pos, spacing, (y0, x0) = self._planes(axis, samples_per_ray, bone_only)
            P, _, Hs, Ws = slab.shape
            self.last_samples_per_ray = max(self.last_samples_per_ray, P)
            Cg = C if sel is None else C[sel]
            og = o_idx if sel is None else o_idx[sel]
            lg = length if sel is None else length[sel]
            da = rows(Cg, axis)  # (G, R) index units along the axis per unit of |G p|
            da = torch.where(da.abs() < 1e-12, torch.full_like(da, 1e-12), da)
            step_mm = (spacing * lg / da.abs()).reshape(-1)  # (G * R,)
            # grid coordinates are affine in the plane position: g = alpha + pos * beta,
            # normalised over the slab's in-plane extent (align_corners=True)
            sx = 2.0 / max(Ws - 1, 1)
            sy = 2.0 / max(Hs - 1, 1)
            rx = rows(Cg, gx_axis_idx) / da
            ry = rows(Cg, gy_axis_idx) / da
            o_a = og[:, axis, None]  # (G, 1)
            alpha = torch.stack([(og[:, gx_axis_idx, None] - o_a * rx - x0) * sx - 1.0,
                                 (og[:, gy_axis_idx, None] - o_a * ry - y0) * sy - 1.0],
                                -1).reshape(-1, 2)
            beta = torch.stack([rx * sx, ry * sy], -1).reshape(-1, 2)
            # planes behind the source (t < 0) must not count; the mask is skipped when all
            # planes lie in front of the source for every ray of the group
            in_front = ((da > 0) & (o_a < pos[0])) | ((da < 0) & (o_a > pos[-1]))
            need_mask = not bool(in_front.all())
            o_a_rays = o_a.expand(-1, R_).reshape(-1)
            da_rays = da.reshape(-1)
            n_rays = da_rays.shape[0]
            chunk = max(1, self.max_points_per_chunk // P)
            pieces = []
            for start in range(0, n_rays, chunk):
                sl = slice(start, min(start + chunk, n_rays))
                grid = torch.addcmul(alpha[None, sl], pos[:, None, None], beta[None, sl])
                vals = F.grid_sample(
                    slab,
                    grid.unsqueeze(2),
                    mode="bilinear",
                    padding_mode="zeros",
                    align_corners=True,
                )[:, 0, :, 0]  # (P, r)
                if need_mask:
                    t = (pos[:, None] - o_a_rays[None, sl]) / da_rays[None, sl]
                    vals = vals * (t > 0).to(vals.dtype)
                pieces.append(vals.sum(dim=0) * step_mm[sl])
            line = (torch.cat(pieces) if len(pieces) > 1 else pieces[0]).reshape(len(members), R_)
            if out is None or sel is None:
                return line.reshape(-1)
            results.append((sel, line))
        # scatter the groups back into batch order (autograd-safe: index_copy)
        for sel, line in results:
            out = out.index_copy(0, sel, line)
        return out.reshape(-1)
