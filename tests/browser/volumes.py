"""Synthetic CT studies for viewer tests (seeded, tiny, stored through default_storage)."""

from __future__ import annotations

import io

import numpy as np


def phantom_hu(shape_kji: tuple[int, int, int] = (24, 48, 56), seed: int = 0) -> np.ndarray:
    """An int16 HU phantom (k, j, i): air around a soft-tissue ellipse (~40 HU) holding
    two lungs (~-800 HU) and a bone rod (~1000 HU) that widens with k, plus mild noise."""
    rng = np.random.default_rng(seed)
    nk, nj, ni = shape_kji
    k, j, i = np.meshgrid(np.arange(nk), np.arange(nj), np.arange(ni), indexing="ij")
    y = (j - (nj - 1) / 2) / (nj / 2)
    x = (i - (ni - 1) / 2) / (ni / 2)
    hu = np.full(shape_kji, -1000.0)
    body = (x / 0.9) ** 2 + (y / 0.75) ** 2 <= 1
    hu[body] = 40.0 + 20.0 * y[body]
    for side in (-0.42, 0.42):
        lung = ((x - side) / 0.3) ** 2 + (y / 0.45) ** 2 <= 1
        hu[lung] = -800.0
    radius = 0.12 + 0.1 * k / max(nk - 1, 1)
    rod = x**2 + (y - 0.45) ** 2 <= radius**2
    hu[rod] = 1000.0
    hu += rng.normal(0.0, 5.0, size=shape_kji)
    return np.clip(np.rint(hu), -1024, 3071).astype(np.int16)


def affine_for(spacing_ijk=(0.8, 0.8, 2.5), origin=(-20.0, -15.0, 100.0), flip_k=False):
    """4x4 voxel (i, j, k, 1) -> LPS mm with axial slices; ``flip_k`` runs k toward the feet."""
    affine = np.eye(4)
    affine[0, 0], affine[1, 1], affine[2, 2] = spacing_ijk
    if flip_k:
        affine[2, 2] = -spacing_ijk[2]
    affine[:3, 3] = origin
    return affine


def save_study(patient, array: np.ndarray, affine: np.ndarray, *, description="Synthetic CT"):
    """A READY CTStudy of ``patient`` whose volume file is ``array`` saved as .npy."""
    from django.core.files.base import ContentFile

    from webapp.records.models import CTStudy

    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    study = CTStudy(
        patient=patient,
        description=description,
        shape=[int(n) for n in array.shape],
        spacing_mm=[float(v) for v in np.linalg.norm(affine[:3, :3], axis=0)],
        affine=np.asarray(affine, float).tolist(),
        hu_min=float(array.min()),
        hu_max=float(array.max()),
        status=CTStudy.Status.READY,
    )
    study.volume_file.save("volume.npy", ContentFile(buffer.getvalue()), save=False)
    study.save()
    return study
