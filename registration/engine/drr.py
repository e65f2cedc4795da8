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

Parts: :mod:`registration.engine.drr_volume` (volume checks, content box),
:mod:`registration.engine.drr_rays` (pose checks, ray geometry, the ``"rays"`` scheme) and
:mod:`registration.engine.drr_planes` (the ``"planes"`` scheme and its slab cache).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from registration.engine.attenuation import DEFAULT_BONE_THRESHOLD_HU, hu_to_mu
from registration.engine.drr_planes import PlaneSampling
from registration.engine.drr_rays import normalised_rays, patch_window, prepare_pose, render_rays
from registration.engine.drr_volume import (
    content_box,
    content_range,
    volume_parts,
    voxel_centres_lps,
)


class DrrRenderer(PlaneSampling):
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
        array, affine = volume_parts(volume)
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
            False: content_box(mu > 0, self._scale_idx_to_norm, dtype, self.device),
            True: content_box((mu > 0) & bone, self._scale_idx_to_norm, dtype, self.device),
        }
        self._content_idx = {
            False: content_range(mu > 0),
            True: content_range((mu > 0) & bone),
        }

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
        T, K, _ = prepare_pose(T, K, self.dtype, self.device)
        u0, v0, w, h = patch_window(height, width, patch)
        o, d, mm_per_t = normalised_rays(T, K, (u0, v0, w, h), self._norm_from_world)
        return o, d, mm_per_t, h, w

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
            vol = self._mu_bone if bone_only else self._mu
            line = render_rays(vol, self._box[bool(bone_only)], o, d, samples_per_ray,
                               self.max_points_per_chunk)
            return line.reshape(B, h, w)
        T, K, B = prepare_pose(T_cam_from_world, K, self.dtype, self.device)
        u0, v0, w, h = patch_window(height, width, patch)
        if self._box[bool(bone_only)] is None:
            return torch.zeros(B, h, w, dtype=self.dtype, device=self.device)
        line = self._render_planes(T, K, (u0, v0, w, h), samples_per_ray, bool(bone_only))
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
