"""Adapter to the independent ``nanodrr`` renderer (test/benchmark only, optional).

``nanodrr`` (PyPI 0.1.7) is not a runtime dependency: import this module only in tests
and benchmarks, and check :func:`available` first.

Geometry mapping (ours -> nanodrr), documented because the two differ in conventions:

* Camera frame: both use OpenCV axes (+x columns, +y rows, +z source -> detector), the
  source at the camera origin. nanodrr's ``rt_inv`` is camera -> world, i.e.
  ``inv(T_cam_from_world)``.
* Pixel centres: nanodrr casts rays through ``(u + 0.5, v + 0.5)`` (pixel corners at
  integers) while our pixel centres are integers, so its intrinsics are ours with
  ``cx + 0.5`` and ``cy + 0.5``.
* Volume: we hand nanodrr our attenuation volume (mm^-1, ``convert_to_mu=False``) with
  our LPS ``affine`` as its voxel -> world matrix and the array in (k, j, i) =
  (D, H, W) order, bypassing torchio's RAS file loading; both renderers then integrate
  the same ``mu`` field in mm. nanodrr samples with ``align_corners=False`` and zero
  padding on the box one voxel beyond the grid, we with ``align_corners=True`` and
  border padding on the voxel box; the two differ only within half a voxel of the
  volume faces.
* Source-to-detector distance: only bounds nanodrr's ray segment (rays end on the
  detector); pass the camera's.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


def available() -> bool:
    """True when nanodrr can be imported."""
    try:
        import nanodrr.data  # noqa: F401
        import nanodrr.drr  # noqa: F401
    except Exception:  # pragma: no cover - depends on the environment
        return False
    return True


class NanoDrrReference:
    """nanodrr renderer for one attenuation volume, same call shape as DrrRenderer."""

    def __init__(
        self,
        mu_kji: np.ndarray | torch.Tensor,
        affine: np.ndarray,
        *,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> None:
        from nanodrr.data import Subject

        self.device = torch.device(device)
        self.dtype = dtype
        mu = torch.as_tensor(mu_kji, dtype=dtype).to(self.device)[None, None].contiguous()
        v2w = torch.as_tensor(np.asarray(affine, dtype=np.float64))
        w2v = torch.linalg.inv(v2w)
        v2g = Subject._make_voxel_to_grid(mu.shape).to(torch.float64)
        self.subject = Subject(
            mu,
            torch.zeros_like(mu),
            v2w.to(dtype).to(self.device),
            w2v.to(dtype).to(self.device),
            v2g.to(dtype).to(self.device),
            torch.zeros(3, dtype=dtype, device=self.device),
            max_label=0,
            convert_to_mu=False,
        )

    def render(
        self,
        T_cam_from_world: Any,
        K: Any,
        height: int,
        width: int,
        *,
        source_to_detector_mm: float,
        samples_per_ray: int = 256,
    ) -> torch.Tensor:
        """(B, H, W) line integrals for poses (4, 4)/(B, 4, 4) and ``K`` (3, 3)."""
        from nanodrr.drr.renderer import render

        if isinstance(T_cam_from_world, torch.Tensor):
            T_cam_from_world = T_cam_from_world.detach().cpu().double().numpy()
        if isinstance(K, torch.Tensor):
            K = K.detach().cpu().double().numpy()
        T = torch.as_tensor(np.asarray(T_cam_from_world, dtype=np.float64))
        if T.ndim == 2:
            T = T[None]
        Kn = np.array(K, dtype=np.float64).copy()
        Kn[0, 2] += 0.5
        Kn[1, 2] += 0.5
        k_inv = torch.as_tensor(np.linalg.inv(Kn))[None].to(self.dtype).to(self.device)
        k_inv = k_inv.expand(T.shape[0], 3, 3)
        rt_inv = torch.linalg.inv(T).to(self.dtype).to(self.device)
        sdd = torch.full((T.shape[0],), float(source_to_detector_mm), dtype=self.dtype)
        # nanodrr takes (B, 3, 3) k_inv
        out = render(
            self.subject,
            k_inv,
            rt_inv,
            sdd.to(self.device),
            int(height),
            int(width),
            n_samples=int(samples_per_ray),
            backend="torch",
        )
        return out[:, 0]
