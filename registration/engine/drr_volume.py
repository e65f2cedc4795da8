"""The CT volume as the DRR renderer reads it, no Django imports.

Checks a ``CTVolume``-like object (``array`` (k, j, i) HU, ``affine`` voxel (i, j, k, 1) ->
LPS mm), and finds the box of its non-air content: in voxel index units (the plane
sampler's crop) and in normalised grid coordinates (the ray sampler's slab test), see
:mod:`registration.engine.drr`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


def volume_parts(volume: Any) -> tuple[np.ndarray, np.ndarray]:
    """``(array (k, j, i) HU, affine 4x4 float64)`` of ``volume``; ValueError naming the
    problem when either is missing or malformed."""
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


def content_box(
    nonzero: np.ndarray,
    scale_idx_to_norm: np.ndarray,
    dtype: torch.dtype,
    device: torch.device,
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """``(lo, hi)`` (i, j, k) normalised-coordinate box where trilinear mu can be non-zero
    (``nonzero`` a (k, j, i) mask; normalised = index * ``scale_idx_to_norm`` - 1), or None."""
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
    lo = np.array(lo_idx) * scale_idx_to_norm - 1.0
    hi = np.array(hi_idx) * scale_idx_to_norm - 1.0
    return (
        torch.as_tensor(lo, dtype=dtype, device=device),
        torch.as_tensor(hi, dtype=dtype, device=device),
    )


def content_range(nonzero: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """(i, j, k) index ranges [lo, hi] of the non-zero voxels of a (k, j, i) mask, or None."""
    if not nonzero.any():
        return None
    lo, hi = [], []
    for axis_kji in (2, 1, 0):
        where = np.flatnonzero(nonzero.any(axis=tuple(a for a in range(3) if a != axis_kji)))
        lo.append(int(where[0]))
        hi.append(int(where[-1]))
    return np.array(lo), np.array(hi)
