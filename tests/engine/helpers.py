"""Test helpers for the imaging engine: in-memory volumes and NIfTI loading (RAS -> LPS)."""

from __future__ import annotations

import numpy as np

from dicomio.volume import CTVolume


def load_nifti_lps(path, *, background_to_air: bool = False) -> CTVolume:
    """NIfTI -> CTVolume with the LPS affine (negate the first two rows of the RAS one).

    ``background_to_air`` maps exact-0 background (pelvis_bone_* volumes) to -1000 HU.
    """
    import nibabel as nib

    img = nib.load(str(path))
    arr = np.asarray(img.dataobj, dtype=np.float32).transpose(2, 1, 0)  # (i,j,k) -> (k,j,i)
    if background_to_air:
        arr = np.where(arr == 0, np.float32(-1000.0), arr)
    affine = img.affine.astype(np.float64).copy()
    affine[:2] *= -1.0
    return CTVolume(arr, affine)


def load_pelvis(folder) -> CTVolume:
    """Sum of the _LI, _RI, _SA parts of a pelvis_bone_* case, background set to air."""
    import nibabel as nib

    parts = sorted(p for p in folder.glob("*.nii.gz") if "_mask" not in p.name)
    total = None
    affine = None
    for p in parts:
        img = nib.load(str(p))
        a = np.asarray(img.dataobj, dtype=np.float32)
        total = a if total is None else total + a
        affine = img.affine
    arr = np.where(total == 0, np.float32(-1000.0), total).transpose(2, 1, 0)
    aff = affine.astype(np.float64).copy()
    aff[:2] *= -1.0
    return CTVolume(np.ascontiguousarray(arr), aff)


def box_volume(
    shape_kji=(24, 28, 32),
    spacing=(1.5, 1.25, 2.0),
    hu_inside=1000.0,
    lo=(8, 6, 5),
    hi=(22, 20, 18),
) -> CTVolume:
    """Air volume with a box of ``hu_inside`` over voxel index ranges ``lo..hi`` (i, j, k),
    centred near the world origin."""
    arr = np.full(shape_kji, -1000.0, np.float32)
    arr[lo[2] : hi[2], lo[1] : hi[1], lo[0] : hi[0]] = hu_inside
    affine = np.diag([*spacing, 1.0])
    n = np.array(shape_kji[::-1], float)
    affine[:3, 3] = -(n - 1) / 2 * np.array(spacing)
    return CTVolume(arr, affine)


def volume_center(vol: CTVolume) -> np.ndarray:
    n = np.array(vol.shape[::-1], float)
    return vol.voxel_to_world(((n - 1) / 2)[None])[0]
