"""Loading CT volumes from DICOM series (files, folders, .zip) and NIfTI (no Django imports).

Public entry point: :func:`load_ct` (re-exported as ``dicomio.load_ct``)::

    vol = load_ct("series_folder/")            # or a .zip, a list of files, a .nii/.nii.gz
    vol.array      # float32 HU, shape (slices, rows, cols) = (k, j, i)
    vol.affine     # 4x4, voxel (i, j, k, 1) -> LPS mm (DICOM patient frame)
    vol.metadata   # UIDs, description, date, transfer syntaxes, resampling notes, ...

Every problem raises :class:`~dicomio.errors.InputRefused` (a ``ValueError`` with a
one-line ``message``); an input with several image series raises
:class:`~dicomio.errors.MultipleSeriesFound` listing them, and ``series_uid=`` picks one.

Refusal policy (consistent for every input):

* non-CT images are refused as ``not a CT image (modality MR)``; non-image objects (SR, RT plan,
  ...) are skipped inside a series folder and refused when nothing else is there;
* a single slice is refused (``only 1 slice``): no slice spacing, no volume;
* duplicate positions and non-uniform slice spacing (missing slices, uneven gaps) are refused
  naming the slices; a constant gantry tilt is corrected by in-plane resampling onto an
  orthogonal grid (never a sheared affine);
* the header is checked before any pixel decoding: total voxels against ``max_voxels`` and
  the pixel payload against the declared matrix (a forged huge Rows x Columns is refused);
* transfer syntaxes that the installed decoders (pylibjpeg, pyjpegls) cannot decode are
  refused naming the transfer syntax.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from dicomio.dataset import DEFAULT_MAX_MEMORY_BYTES, DEFAULT_MAX_VOXELS, NIFTI_SUFFIXES
from dicomio.errors import InputRefused, MultipleSeriesFound
from dicomio.nifti import is_nifti, load_nifti
from dicomio.pixels import check_pixel_header, decode_frames
from dicomio.series import list_series, load_dicom_series
from dicomio.sources import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_FILES,
)
from dicomio.volume import CTVolume

# --------------------------------------------------------------------------- entry point


DICOM_PEAK_BYTES_PER_VOXEL = 10


def load_ct(
    path: Path | str | Iterable[Path | str],
    *,
    series_uid: str | None = None,
    deidentify: bool = False,
    max_voxels: int = DEFAULT_MAX_VOXELS,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_files: int = DEFAULT_MAX_FILES,
    max_memory_bytes: int = DEFAULT_MAX_MEMORY_BYTES,
) -> CTVolume:
    """Load a CT volume from a NIfTI file, a DICOM folder, a .zip or a list of DICOM files.

    Returns a :class:`CTVolume`: ``array`` float32 HU of shape (k, j, i), ``affine`` voxel
    (i, j, k, 1) -> LPS mm. Raises :class:`InputRefused` (or :class:`MultipleSeriesFound`)
    with a one-line message when the input is not an importable CT.
    """
    if not isinstance(path, str | Path):
        path = list(path)
        if len(path) == 1:
            path = path[0]
        elif any(str(p).lower().endswith(NIFTI_SUFFIXES) for p in path):
            raise InputRefused("a NIfTI volume must be imported on its own, not with other files")
    if isinstance(path, str | Path) and is_nifti(Path(path)):
        return load_nifti(path, max_voxels=max_voxels, max_memory_bytes=max_memory_bytes)
    # decoded frames (int16/uint16) plus float32 HU and a float32 resampled copy at the peak
    fitting = max_memory_bytes // DICOM_PEAK_BYTES_PER_VOXEL
    return load_dicom_series(
        path,
        series_uid=series_uid,
        deidentify=deidentify,
        max_voxels=min(max_voxels, fitting),
        max_bytes=max_bytes,
        max_files=max_files,
    )


__all__ = [
    "InputRefused",
    "MultipleSeriesFound",
    "check_pixel_header",
    "decode_frames",
    "list_series",
    "load_ct",
    "load_dicom_series",
    "load_nifti",
]
