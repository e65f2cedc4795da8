"""NIfTI CT volumes: RAS on disk, converted to the LPS affine of docs/CONVENTIONS.md on
load (no Django imports)."""

from __future__ import annotations

import gzip
import math
import struct
from pathlib import Path

import numpy as np

from dicomio.dataset import DEFAULT_MAX_MEMORY_BYTES, DEFAULT_MAX_VOXELS, NIFTI_SUFFIXES
from dicomio.errors import InputRefused
from dicomio.volume import CTVolume

# Import peak per voxel beyond the stored bytes: float32 HU plus its (k, j, i) copy.
WORKING_BYTES_PER_VOXEL = 8


def is_nifti(path: Path) -> bool:
    return path.is_file() and path.name.lower().endswith(NIFTI_SUFFIXES)


def check_payload(path: Path, img, voxels: int, *, max_memory_bytes: int) -> None:
    """Refuse, before any voxel is read, a NIfTI whose declared voxels would not fit the
    memory budget (what stops a decompression bomb: no inflate ratio can, since cropped CT
    parts padded with zeros compress 150-3000 times) or are not in the file (truncated or
    forged header). Reads only the gzip trailer."""
    itemsize = int(img.header.get_data_dtype().itemsize)
    offset = getattr(img.dataobj, "offset", None)  # the loaded header's vox_offset reads 0
    need = int(offset if offset is not None else 352) + voxels * itemsize
    peak = voxels * (itemsize + WORKING_BYTES_PER_VOXEL)
    if peak > max_memory_bytes:
        raise InputRefused(
            f"{path.name}: its {voxels} voxels need about {peak / 2**30:.1f} GiB of memory to "
            f"import, more than the limit of {max_memory_bytes / 2**30:.1f} GiB"
        )
    size = path.stat().st_size
    if not path.name.lower().endswith(".gz"):
        if size < need:
            raise InputRefused(
                f"{path.name}: the file holds {size} bytes but its header declares {need}"
            )
        return
    with open(path, "rb") as handle:
        handle.seek(max(size - 4, 0))
        trailer = handle.read(4)
    if len(trailer) != 4:
        raise InputRefused(f"{path.name}: the gzip data is truncated")
    (inflated_mod,) = struct.unpack("<I", trailer)
    if inflated_mod != need % 2**32:
        raise InputRefused(
            f"{path.name}: the compressed data does not hold the {need} bytes its header "
            "declares (truncated or forged header)"
        )


def load_nifti(
    path: Path | str,
    *,
    max_voxels: int = DEFAULT_MAX_VOXELS,
    max_memory_bytes: int = DEFAULT_MAX_MEMORY_BYTES,
) -> CTVolume:
    """Load a NIfTI CT (values taken as HU after the header's scl_slope/scl_inter).

    NIfTI world coordinates are RAS; the affine is converted to LPS by negating its first two
    rows, and the (i, j, k) array is transposed to (k, j, i). The declared size is checked
    against the voxel and memory limits and the file's payload before any voxel is read.
    """
    import nibabel as nib

    path = Path(path)
    try:
        img = nib.load(str(path))
    except Exception as exc:  # noqa: BLE001
        raise InputRefused(f"{path.name} is not a readable NIfTI file ({str(exc)[:120]})") from None
    shape = tuple(int(n) for n in img.shape)
    if len(shape) == 4 and shape[3] == 1:
        shape = shape[:3]
    if len(shape) != 3:
        raise InputRefused(
            f"{path.name}: a CT volume must be 3-D, this NIfTI has shape {img.shape}"
        )
    voxels = int(np.prod(shape))
    if voxels > max_voxels:
        raise InputRefused(f"{path.name}: {voxels} voxels, more than the limit of {max_voxels}")
    if min(shape) < 2:
        raise InputRefused(f"{path.name}: only 1 slice along one axis (shape {shape})")
    try:
        check_payload(path, img, voxels, max_memory_bytes=max_memory_bytes)
    except (OSError, gzip.BadGzipFile) as exc:
        raise InputRefused(f"{path.name}: the file cannot be read ({type(exc).__name__})") from None
    try:
        proxy = img.dataobj
        if nib.is_proxy(proxy):
            # unscaled read + float32 scaling: much faster than nibabel's float64 path
            raw = np.asanyarray(proxy.get_unscaled())
            slope, inter = float(proxy.slope), float(proxy.inter)
        else:
            raw, slope, inter = np.asarray(proxy), 1.0, 0.0
        data = raw.astype(np.float32).reshape(shape, order="A")
        del raw
        if math.isfinite(slope) and math.isfinite(inter) and (slope, inter) != (1.0, 0.0):
            if slope == 0:
                raise InputRefused(f"{path.name}: scl_slope is 0")
            data *= np.float32(slope)
            data += np.float32(inter)
    except InputRefused:
        raise
    except Exception as exc:  # noqa: BLE001 - truncated gzip etc.
        raise InputRefused(
            f"{path.name}: the voxel data cannot be read ({str(exc)[:120]})"
        ) from None
    if not np.all(np.isfinite(data)):
        raise InputRefused(f"{path.name}: the volume contains NaN or infinite values")
    affine_ras = np.asarray(img.affine, dtype=np.float64)
    affine = np.diag([-1.0, -1.0, 1.0, 1.0]) @ affine_ras
    try:
        descrip = img.header.get("descrip")
        description = (
            descrip.tobytes().decode("ascii", "ignore").strip("\x00 ").strip()
            if descrip is not None
            else ""
        )
    except Exception:  # noqa: BLE001
        description = ""
    meta = {
        "modality": "CT",
        "source_format": "nifti",
        "source_kind": "file",
        "file_count": 1,
        "series_description": description,
        "transfer_syntaxes": [],
        "resampling": [],
        "n_slices": shape[2],
        "deidentified": False,
        "skipped": [],
    }
    try:
        volume = CTVolume(
            array=np.ascontiguousarray(data.transpose(2, 1, 0)), affine=affine, metadata=meta
        )
    except ValueError as exc:
        raise InputRefused(f"{path.name}: {exc}") from None
    return volume
