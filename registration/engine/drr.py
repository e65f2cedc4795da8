"""Differentiable digitally reconstructed radiographs (DRR), no Django imports.

Output is in line-integral form (../shared/CONVENTIONS.md "X-ray intensity"):
``DRR(u, v) = sum_i mu(x_i) * step_mm`` along the ray from the source through pixel
centre ``(u, v)``, with ``mu`` from :mod:`registration.engine.attenuation` (mm^-1), so
values are unitless optical depths (bone bright, air 0).

Geometry: a pose ``T_cam_from_world`` (world = LPS mm) and intrinsics ``K`` (pixels) as in
:mod:`registration.engine.camera`. For every ray the renderer intersects the ray with
the box of the volume's non-air content (a sub-box of the voxel box
``[-0.5, n - 0.5]`` in index space; outside it ``mu`` is exactly 0) and places
``samples_per_ray`` samples at the midpoints of equal sub-intervals of the clipped
segment; ``mu`` is sampled trilinearly (``torch.nn.functional.grid_sample``,
``align_corners=True``, border padding, i.e. a voxel fills the cube around its centre).
Everything is torch, so the image is differentiable with respect to ``T`` and ``K``.

Memory: rays are processed in chunks of at most ``max_points_per_chunk`` samples (a
chunk costs about 16 bytes per sample in float32 plus autograd buffers when gradients
are needed), so any batch size and image size fits.
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
    ) -> None:
        array, affine = _volume_parts(volume)
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
        mu_bone = np.where(bone, mu, np.float32(0.0))
        if max_points_per_chunk is None:
            max_points_per_chunk = (1 << 26) if self.device.type == "cuda" else (1 << 21)
        self.max_points_per_chunk = int(max_points_per_chunk)

        self._mu = torch.as_tensor(mu, dtype=dtype, device=self.device)[None, None].contiguous()
        self._mu_bone = torch.as_tensor(mu_bone, dtype=dtype, device=self.device)[None, None]
        self._mu_bone = self._mu_bone.contiguous()

        # normalised grid coordinates (align_corners=True): g = 2 * idx / (n - 1) - 1
        k, j, i = self.shape
        N = np.diag([2.0 / (i - 1), 2.0 / (j - 1), 2.0 / (k - 1), 1.0])
        N[:3, 3] = -1.0
        self._norm_from_world = torch.as_tensor(
            N @ np.linalg.inv(affine), dtype=dtype, device=self.device
        )
        self._scale_idx_to_norm = np.array([2.0 / (i - 1), 2.0 / (j - 1), 2.0 / (k - 1)])
        self._box = {
            False: self._content_box(mu > 0),
            True: self._content_box(mu_bone > 0),
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
    ) -> torch.Tensor:
        """Render ``(B, h, w)`` float line integrals (``h, w`` = image or patch size).

        ``T_cam_from_world`` (4, 4) or (B, 4, 4), ``K`` (3, 3) or (B, 3, 3) for the full
        ``height x width`` image; ``patch = (u0, v0, w, h)`` renders only that window.
        Differentiable with respect to ``T`` and ``K`` when they require grad.
        """
        samples_per_ray = int(samples_per_ray)
        if samples_per_ray < 1:
            raise ValueError(f"samples_per_ray must be >= 1, got {samples_per_ray}")
        o, d, _, h, w = self.rays_normalised(T_cam_from_world, K, height, width, patch)
        B, R = d.shape[0], d.shape[1]
        box = self._box[bool(bone_only)]
        vol = self._mu_bone if bone_only else self._mu
        out_dtype = self.dtype
        if box is None:
            return torch.zeros(B, h, w, dtype=out_dtype, device=self.device)
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
        line = torch.cat(pieces) if len(pieces) > 1 else pieces[0]
        return line.reshape(B, h, w)

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
