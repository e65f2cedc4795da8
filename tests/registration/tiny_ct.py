"""A tiny synthetic CT written as NIfTI, for the command tests (train, bench, scripts)."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np

from simulation.phantom_ct import synthetic_bone_ct


def write_nifti(vol, path: Path) -> Path:
    """Save a ``CTVolume`` (LPS affine, array (k, j, i)) as NIfTI (RAS affine, (i, j, k))."""
    ras = np.diag([-1.0, -1.0, 1.0, 1.0]) @ vol.affine
    nib.save(nib.Nifti1Image(np.ascontiguousarray(vol.array.transpose(2, 1, 0)), ras), str(path))
    return path


def write_tiny_ct(path: Path) -> Path:
    """The 32^3 synthetic bone CT at 6 mm, saved at ``path``."""
    return write_nifti(synthetic_bone_ct(32, 6.0), path)
