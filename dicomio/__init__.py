"""Django-free DICOM and NIfTI reading: CT volumes and X-ray images (no Django imports).

Public API (used by the upload views, the CT viewer, the DRR renderer and registration):

* ``load_ct(path, *, series_uid=None, deidentify=False, max_voxels=..., max_bytes=...)``
  -> :class:`CTVolume` (float32 HU array (k, j, i), affine voxel (i, j, k, 1) -> LPS mm).
  ``path`` is a NIfTI file (.nii/.nii.gz, RAS converted to LPS), a DICOM folder, a .zip or a
  list of DICOM files.
* ``read_xray(path, *, max_voxels=...)`` -> :class:`XrayData` (float32 (H, W) stored values,
  photometric interpretation, geometry dict) for DICOM XA/RF/DX/CR and 8/16-bit PNG.
* ``list_series(path)`` -> the image series in an input (to let a user choose).
* Refusals: :class:`InputRefused` (``ValueError`` with ``.message``) and its subclass
  :class:`MultipleSeriesFound` (``.series``: list of dicts).
"""

from dicomio.ct import list_series, load_ct, load_nifti
from dicomio.errors import InputRefused, MultipleSeriesFound
from dicomio.volume import CTVolume
from dicomio.xray import XrayData, read_xray, zero_preamble

__all__ = [
    "CTVolume",
    "InputRefused",
    "MultipleSeriesFound",
    "list_series",
    "load_ct",
    "load_nifti",
    "read_xray",
    "XrayData",
    "zero_preamble",
]
