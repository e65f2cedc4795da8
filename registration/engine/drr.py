"""Differentiable digitally reconstructed radiographs (DRR), no Django imports.

Output is in line-integral form (docs/CONVENTIONS.md "X-ray intensity"):
``DRR(u, v) = sum_i mu(x_i) * step_mm`` along the ray from the source through pixel
centre ``(u, v)``, with ``mu`` from :mod:`registration.engine.attenuation` (mm^-1), so
values are unitless optical depths (bone bright, air 0).

Geometry: a pose ``T_cam_from_world`` (world = LPS mm) and intrinsics ``K`` (pixels) as in
:mod:`geometry.camera`. A voxel's value sits at its centre; ``mu`` is
interpolated (bi/trilinearly) between centres. Only the box of the volume's non-air
content is traversed (outside it ``mu`` is exactly 0). Two sampling schemes:

* ``"planes"`` (default, fast; Joseph's method): for each pose, the volume index axis
  most aligned with the mean viewing direction is the marching axis; every ray is sampled
  where it crosses the planes perpendicular to it: the content slices themselves
  (one sample per slice, bilinear in-plane, ``samples_per_ray`` an upper bound) or, when
  ``samples_per_ray`` is smaller than the number of content slices (or always, with
  ``plane_sampling="exact"``), that many planes resampled linearly between slices. Step
  length = plane spacing / |cos| of the ray to the axis, in mm. One batched 2-D
  ``grid_sample`` per chunk (vectorised on CPU). The planes cover the content box only,
  and the resampled slabs stay in a least-recently-used cache (``plane_cache_bytes``).
* ``"rays"``: each ray is clipped to the content box (slab test) and sampled at the
  midpoints of ``samples_per_ray`` equal sub-intervals, trilinear 3-D ``grid_sample``
  (``align_corners=True``, border padding: a voxel fills the cube around its centre).

Everything is torch, so the image is differentiable with respect to ``T`` and ``K``.
Memory: rays are processed in chunks of at most ``max_points_per_chunk`` samples (about
16 bytes per sample in float32, plus autograd buffers when gradients are needed), so any
batch and image size fits; on CUDA the chunks are large (2^26 samples). Besides the volume,
the renderer keeps a copy of the content box per marching axis used and the plane cache.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from registration.engine.attenuation import DEFAULT_BONE_THRESHOLD_HU, hu_to_mu


def _volume_parts(volume: Any) -> tuple[np.ndarray, np.ndarray]:
    array = getattr(volume, "array", None)
    affine = getattr(volume, "affine", None)
    if array is None or affine is None:
        raise ValueError("volume must have .array (k, j, i) in HU and a 4x4 .affine")
    array = np.asarray(array)
    affine = np.asarray(affine, dtype=np.float64)
    if array.ndim != 3:
        raise ValueError(f"CT array must be 3-D, got shape {array.shape}")
    if min(array.shape) < 2:
        raise ValueError(f"CT volume needs at least 2 voxels along each axis, got {array.shape}")
    if affine.shape != (4, 4) or not np.all(np.isfinite(affine)):
        raise ValueError("CT affine must be a finite 4x4 matrix")
    return array, affine


def voxel_centres_lps(
    mask: np.ndarray, affine: np.ndarray, max_points: int, seed: int = 0
) -> np.ndarray:
    """LPS mm centres ``(N, 3)`` of the voxels set in ``mask`` (k, j, i), through the 4x4
    voxel (i, j, k) -> LPS ``affine``; a seeded random subset of at most ``max_points``."""
    kji = np.argwhere(mask)
    if len(kji) > max_points:
        kji = kji[np.random.default_rng(seed).choice(len(kji), max_points, replace=False)]
    A = np.asarray(affine, dtype=np.float64)
    return kji[:, ::-1].astype(np.float64) @ A[:3, :3].T + A[:3, 3]


class DrrRenderer:
    """Renders DRRs of one CT volume.

    Args:
        volume: a ``CTVolume`` (``array`` (k, j, i) HU, ``affine`` voxel (i, j, k, 1) -> LPS).
        device: torch device for the volume and the rendering.
        bone_threshold_hu: HU threshold for ``bone_only`` rendering (default 200 HU).
        dtype: float32 (fast) or float64 (gradient checks).
        bone_mask: optional boolean (k, j, i) mask for ``bone_only`` rendering instead of
            the threshold.
        max_points_per_chunk: samples per grid_sample call (memory bound).
        method: ``"planes"`` (default) or ``"rays"`` (see the module docstring).
        plane_sampling: for ``"planes"``: ``"slices"`` (default) samples each content slice
            once when ``samples_per_ray`` is at least the number of slices crossed (else
            ``samples_per_ray`` resampled planes); ``"exact"`` always uses exactly
            ``samples_per_ray`` planes (linear resampling between slices; costs a cached
            slab of ``samples_per_ray`` planes in memory).
        plane_cache_bytes: memory for cached plane slabs (default 512 MiB), least
            recently used dropped first.
    """

    def __init__(
        self,
        volume: Any,
        *,
        device: str | torch.device = "cpu",
        bone_threshold_hu: float | None = None,
        dtype: torch.dtype = torch.float32,
        bone_mask: np.ndarray | None = None,
        max_points_per_chunk: int | None = None,
        method: str = "planes",
        plane_sampling: str = "slices",
        plane_cache_bytes: int = 1 << 29,
    ) -> None:
        array, affine = _volume_parts(volume)
        if method not in ("planes", "rays"):
            raise ValueError(f"method must be 'planes' or 'rays', got {method!r}")
        if plane_sampling not in ("slices", "exact"):
            raise ValueError(f"plane_sampling must be 'slices' or 'exact', got {plane_sampling!r}")
        self.method = method
        self.plane_sampling = plane_sampling
        self.last_samples_per_ray = 0  # samples per ray actually used by the last render
        # resampled plane slabs, least recently used first (a registration asks for about
        # six sample counts; rebuilding a slab costs a pass over the content box)
        self._plane_cache: dict = {}
        self._plane_cache_used = 0
        self.plane_cache_bytes = int(plane_cache_bytes)
        self._perm_cache: dict = {}
        self.device = torch.device(device)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError("device 'cuda' requested but CUDA is not available")
        self.dtype = dtype
        self.shape = tuple(int(n) for n in array.shape)  # (k, j, i)
        self.affine = affine
        self.bone_threshold_hu = (
            DEFAULT_BONE_THRESHOLD_HU if bone_threshold_hu is None else float(bone_threshold_hu)
        )
        if bone_mask is not None:
            bone_mask = np.asarray(bone_mask, dtype=bool)
            if bone_mask.shape != array.shape:
                raise ValueError(
                    f"bone mask shape {bone_mask.shape} does not match CT shape {array.shape}"
                )
        mu = hu_to_mu(np.asarray(array, dtype=np.float32))
        bone = bone_mask if bone_mask is not None else (array >= self.bone_threshold_hu)
        if max_points_per_chunk is None:
            max_points_per_chunk = (1 << 26) if self.device.type == "cuda" else (1 << 22)
        self.max_points_per_chunk = int(max_points_per_chunk)

        self._mu = torch.as_tensor(mu, dtype=dtype, device=self.device)[None, None].contiguous()
        # the bone-only volume is built on first use (saves a volume's memory otherwise)
        self._bone_voxels = np.asarray(bone, dtype=bool)
        self._mu_bone_cache: torch.Tensor | None = None
        self._bone_points_cache: dict[tuple[int, int], np.ndarray] = {}

        # normalised grid coordinates (align_corners=True): g = 2 * idx / (n - 1) - 1
        k, j, i = self.shape
        N = np.diag([2.0 / (i - 1), 2.0 / (j - 1), 2.0 / (k - 1), 1.0])
        N[:3, 3] = -1.0
        self._norm_from_world = torch.as_tensor(
            N @ np.linalg.inv(affine), dtype=dtype, device=self.device
        )
        # voxel index (i, j, k) from LPS mm
        self._idx_from_world = torch.as_tensor(np.linalg.inv(affine), dtype=dtype,
                                               device=self.device)
        self._scale_idx_to_norm = np.array([2.0 / (i - 1), 2.0 / (j - 1), 2.0 / (k - 1)])
        self._box = {
            False: self._content_box(mu > 0),
            True: self._content_box((mu > 0) & bone),
        }
        self._content_idx = {
            False: self._content_range(mu > 0),
            True: self._content_range((mu > 0) & bone),
        }

    # ------------------------------------------------------------------ helpers
    def _content_box(self, nonzero: np.ndarray) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Normalised-coordinate box where trilinear mu can be non-zero, or None."""
        if not nonzero.any():
            return None
        lo_idx = []
        hi_idx = []
        for axis_kji in (2, 1, 0):  # i, j, k order
            other = tuple(a for a in range(3) if a != axis_kji)
            profile = nonzero.any(axis=other)
            where = np.flatnonzero(profile)
            n = nonzero.shape[axis_kji]
            # trilinear interpolation is non-zero up to one voxel beyond the content
            lo_idx.append(max(where[0] - 1.0, -0.5))
            hi_idx.append(min(where[-1] + 1.0, n - 0.5))
        lo = np.array(lo_idx) * self._scale_idx_to_norm - 1.0
        hi = np.array(hi_idx) * self._scale_idx_to_norm - 1.0
        return (
            torch.as_tensor(lo, dtype=self.dtype, device=self.device),
            torch.as_tensor(hi, dtype=self.dtype, device=self.device),
        )

    @staticmethod
    def _content_range(nonzero: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """(i, j, k) index ranges [lo, hi] of the non-zero voxels, or None."""
        if not nonzero.any():
            return None
        lo, hi = [], []
        for axis_kji in (2, 1, 0):
            where = np.flatnonzero(nonzero.any(axis=tuple(a for a in range(3) if a != axis_kji)))
            lo.append(int(where[0]))
            hi.append(int(where[-1]))
        return np.array(lo), np.array(hi)

    @property
    def _mu_bone(self) -> torch.Tensor:
        """(1, 1, k, j, i) attenuation of the bone voxels only (0 elsewhere), lazily built."""
        if self._mu_bone_cache is None:
            mask = torch.as_tensor(self._bone_voxels, device=self.device)[None, None]
            self._mu_bone_cache = torch.where(mask, self._mu, torch.zeros_like(self._mu))
        return self._mu_bone_cache

    def bone_points(self, max_points: int = 20_000, seed: int = 0) -> np.ndarray:
        """LPS mm centres ``(N, 3)`` of the bone voxels (a seeded random subset of at most
        ``max_points``), computed once per renderer."""
        key = (int(max_points), int(seed))
        if key not in self._bone_points_cache:
            self._bone_points_cache[key] = voxel_centres_lps(self._bone_voxels, self.affine,
                                                             max_points, seed)
        return self._bone_points_cache[key]

    @property
    def mu_volume(self) -> torch.Tensor:
        """(k, j, i) linear attenuation in mm^-1 on the renderer's device."""
        return self._mu[0, 0]

    def _prepare(self, T: torch.Tensor, K: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int]:
        T = torch.as_tensor(T, dtype=self.dtype, device=self.device)
        K = torch.as_tensor(K, dtype=self.dtype, device=self.device)
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

    @staticmethod
    def _patch(
        height: int, width: int, patch: tuple[int, int, int, int] | None
    ) -> tuple[int, int, int, int]:
        """``(u0, v0, w, h)`` of the rendered window: ``patch`` checked against the image,
        or the whole ``width x height`` image."""
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

    def rays_normalised(
        self,
        T: torch.Tensor,
        K: torch.Tensor,
        height: int,
        width: int,
        patch: tuple[int, int, int, int] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int, int]:
        """Ray origins and directions in normalised grid coordinates.

        Returns ``(origin (B, 1, 3), direction (B, R, 3), mm_per_t (B, R), h, w)``: the
        world direction is unit length, so the ray parameter ``t`` is in mm and
        ``direction`` is the per-mm step in normalised coordinates.
        """
        T, K, B = self._prepare(T, K)
        u0, v0, w, h = self._patch(height, width, patch)
        vs = torch.arange(v0, v0 + h, dtype=self.dtype, device=self.device)
        us = torch.arange(u0, u0 + w, dtype=self.dtype, device=self.device)
        vv, uu = torch.meshgrid(vs, us, indexing="ij")
        pix = torch.stack([uu, vv, torch.ones_like(uu)], dim=-1).reshape(1, -1, 3)
        d_cam = pix @ torch.linalg.inv(K).transpose(-1, -2)  # (B, R, 3)
        R = T[:, :3, :3]
        t = T[:, :3, 3:]
        d_world = d_cam @ R  # rows: R^T d
        d_world = d_world / torch.linalg.norm(d_world, dim=-1, keepdim=True)
        src = -(R.transpose(-1, -2) @ t)  # (B, 3, 1)
        M = self._norm_from_world
        o = (M[:3, :3] @ src).squeeze(-1) + M[:3, 3]  # (B, 3)
        d = d_world @ M[:3, :3].T  # (B, R, 3)
        return o.unsqueeze(1), d, torch.ones_like(d[..., 0]), h, w

    # ------------------------------------------------------------------ render
    def render(
        self,
        T_cam_from_world: torch.Tensor,
        K: torch.Tensor,
        height: int,
        width: int,
        *,
        samples_per_ray: int = 256,
        bone_only: bool = False,
        patch: tuple[int, int, int, int] | None = None,
        method: str | None = None,
    ) -> torch.Tensor:
        """Render ``(B, h, w)`` float line integrals (``h, w`` = image or patch size).

        ``T_cam_from_world`` (4, 4) or (B, 4, 4), ``K`` (3, 3) or (B, 3, 3) for the full
        ``height x width`` image; ``patch = (u0, v0, w, h)`` renders only that window.
        ``method`` overrides the renderer's sampling scheme (``"planes"`` or ``"rays"``,
        see the module docstring). Differentiable with respect to ``T`` and ``K``.
        """
        samples_per_ray = int(samples_per_ray)
        if samples_per_ray < 1:
            raise ValueError(f"samples_per_ray must be >= 1, got {samples_per_ray}")
        method = self.method if method is None else method
        if method not in ("planes", "rays"):
            raise ValueError(f"method must be 'planes' or 'rays', got {method!r}")
        if method == "rays":
            o, d, _, h, w = self.rays_normalised(T_cam_from_world, K, height, width, patch)
            B = d.shape[0]
            if self._box[bool(bone_only)] is None:
                return torch.zeros(B, h, w, dtype=self.dtype, device=self.device)
            self.last_samples_per_ray = samples_per_ray
            line = self._render_rays(o, d, samples_per_ray, bool(bone_only))
            return line.reshape(B, h, w)
        T, K, B = self._prepare(T_cam_from_world, K)
        u0, v0, w, h = self._patch(height, width, patch)
        if self._box[bool(bone_only)] is None:
            return torch.zeros(B, h, w, dtype=self.dtype, device=self.device)
        line = self._render_planes(T, K, (u0, v0, w, h), samples_per_ray, bool(bone_only))
        return line.reshape(B, h, w)

    def _render_rays(
        self, o: torch.Tensor, d: torch.Tensor, samples_per_ray: int, bone_only: bool
    ) -> torch.Tensor:
        """Equidistant trilinear samples on each ray clipped to the content box."""
        B, R = d.shape[0], d.shape[1]
        lo, hi = self._box[bone_only]
        vol = self._mu_bone if bone_only else self._mu
        # slab intersection in normalised coordinates (t in mm along the ray)
        d_safe = torch.where(d.abs() < 1e-12, torch.full_like(d, 1e-12), d)
        inv = 1.0 / d_safe
        t1 = (lo - o) * inv
        t2 = (hi - o) * inv
        t_near = torch.minimum(t1, t2).amax(dim=-1).clamp_min(0.0)
        t_far = torch.maximum(t1, t2).amin(dim=-1)
        length = (t_far - t_near).clamp_min(0.0)  # (B, R) mm
        step = length / samples_per_ray
        frac = torch.arange(samples_per_ray, dtype=self.dtype, device=self.device) + 0.5
        o_flat = o.expand(B, R, 3).reshape(-1, 3)
        d_flat = d.reshape(-1, 3)
        tn_flat = t_near.reshape(-1)
        st_flat = step.reshape(-1)
        n_rays = B * R
        chunk = max(1, self.max_points_per_chunk // samples_per_ray)
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

    # planes (Joseph-style) -------------------------------------------------
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

    def render_numpy(
        self,
        camera: Any,
        T_cam_from_world: Any,
        *,
        samples_per_ray: int = 256,
        bone_only: bool = False,
    ) -> np.ndarray:
        """(H, W) float32 NumPy DRR for a ``Camera`` and one 4x4 pose (no gradients)."""
        with torch.no_grad():
            img = self.render(
                torch.as_tensor(np.asarray(T_cam_from_world, dtype=np.float64)),
                torch.as_tensor(np.array(camera.K, dtype=np.float64)),
                camera.height,
                camera.width,
                samples_per_ray=samples_per_ray,
                bone_only=bone_only,
            )
        return img[0].detach().cpu().numpy().astype(np.float32)


def render_drr(
    volume: Any,
    camera: Any,
    T_cam_from_world: Any,
    *,
    samples_per_ray: int = 256,
    bone_only: bool = False,
    device: str = "cpu",
    bone_threshold_hu: float | None = None,
) -> np.ndarray:
    """Convenience: one ``(H, W)`` float32 NumPy DRR for a ``Camera`` and a 4x4 pose."""
    renderer = DrrRenderer(volume, device=device, bone_threshold_hu=bone_threshold_hu)
    return renderer.render_numpy(
        camera, T_cam_from_world, samples_per_ray=samples_per_ray, bone_only=bone_only
    )
