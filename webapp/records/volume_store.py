"""Storing CT volumes through Django's default storage (local disk or S3).

Public API:

* ``save_volume(study, volume) -> str``: writes ``volume.array`` rounded and clipped to int16
  HU as a ``.npy`` (shape (k, j, i)) into ``study.volume_file`` (key ``volumes/<uuid>.npy``,
  never a client file name) and fills ``study.shape``, ``spacing_mm``, ``affine``,
  ``hu_min``, ``hu_max``. It does not save the study row; the caller does (and deletes the
  file if that fails: :func:`delete_volume_file`).
* ``load_study_volume(study, *, mmap=False) -> CTVolume``: the stored volume; float32 HU by
  default, or the int16 array memory-mapped when ``mmap=True`` and storage is local.
* ``read_slice(study, axis, index) -> np.ndarray``: one int16 slice; axis 0 = k (an
  acquired slice, shape (rows, cols)), 1 = j (shape (slices, cols)), 2 = i (shape (slices,
  rows)). Reads only the needed bytes for axis 0 on any storage, memory-maps locally.

Workers never receive local paths: everything goes through ``default_storage`` names.
"""

from __future__ import annotations

import io
import os

import numpy as np
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from dicomio.volume import CTVolume

INT16_MIN, INT16_MAX = -32768, 32767


def to_int16_hu(array: np.ndarray) -> np.ndarray:
    """Round and clip HU to int16 (the stored form)."""
    arr = np.asarray(array)
    if arr.dtype == np.int16:
        return arr
    return np.clip(np.rint(arr), INT16_MIN, INT16_MAX).astype(np.int16)


def save_volume(study, volume: CTVolume) -> str:
    """Store ``volume`` for ``study`` (a CTStudy, saved or not); return the storage name."""
    arr = to_int16_hu(volume.array)
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(arr), allow_pickle=False)
    study.volume_file.save("volume.npy", ContentFile(buf.getvalue()), save=False)
    study.shape = [int(n) for n in arr.shape]
    study.spacing_mm = [float(v) for v in volume.spacing]
    study.affine = [[float(v) for v in row] for row in volume.affine]
    study.hu_min = float(arr.min()) if arr.size else None
    study.hu_max = float(arr.max()) if arr.size else None
    return study.volume_file.name


def delete_volume_file(study) -> None:
    """Remove the stored volume of ``study`` if there is one (cleanup after a failure)."""
    name = getattr(study.volume_file, "name", "")
    if name and default_storage.exists(name):
        default_storage.delete(name)


def _local_path(name: str) -> str | None:
    """The file's path when storage keeps it on the local disk (else None: read bytes)."""
    try:
        local = default_storage.path(name)
    except NotImplementedError:
        return None
    return local if local and os.path.isfile(local) else None


def _open_array(study, *, mmap: bool) -> np.ndarray:
    name = study.volume_file.name
    if not name:
        raise FileNotFoundError(f"CT study {study.pk} has no stored volume")
    local = _local_path(name) if mmap else None
    if local is not None:
        return np.load(local, mmap_mode="r", allow_pickle=False)
    with default_storage.open(name, "rb") as fh:
        return np.load(io.BytesIO(fh.read()), allow_pickle=False)


def load_study_volume(study, *, mmap: bool = False) -> CTVolume:
    """The stored CT of ``study`` as a :class:`CTVolume` (affine voxel (i, j, k, 1) -> LPS mm).

    ``mmap=False``: float32 HU in memory. ``mmap=True``: the stored int16 array, memory-mapped
    where storage is local (read into memory otherwise).
    """
    arr = _open_array(study, mmap=mmap)
    if not mmap:
        arr = arr.astype(np.float32)
    meta = {
        "study_id": study.pk,
        "series_instance_uid": study.series_instance_uid,
        "study_instance_uid": study.study_instance_uid,
        "description": study.description,
    }
    return CTVolume(array=arr, affine=study.affine_array, metadata=meta)


def read_slice(study, axis: int, index: int) -> np.ndarray:
    """One int16 HU slice of the stored volume along ``axis`` (0 = k, 1 = j, 2 = i)."""
    if axis not in (0, 1, 2):
        raise ValueError(f"axis must be 0, 1 or 2, got {axis}")
    shape = [int(n) for n in study.shape]
    if len(shape) != 3 or not 0 <= index < shape[axis]:
        raise IndexError(
            f"slice {index} is outside 0..{shape[axis] - 1 if len(shape) == 3 else -1}"
        )
    name = study.volume_file.name
    local = _local_path(name)
    if local is not None:
        arr = np.load(local, mmap_mode="r", allow_pickle=False)
        return np.array(np.take(arr, index, axis=axis))
    with default_storage.open(name, "rb") as fh:
        version = np.lib.format.read_magic(fh)
        reader = (
            np.lib.format.read_array_header_1_0
            if version == (1, 0)
            else np.lib.format.read_array_header_2_0
        )
        header_shape, fortran, dtype = reader(fh)
        if axis == 0 and not fortran:
            n = header_shape[1] * header_shape[2]
            fh.seek(fh.tell() + index * n * dtype.itemsize)
            data = fh.read(n * dtype.itemsize)
            return np.frombuffer(data, dtype=dtype).reshape(header_shape[1:]).astype(np.int16)
        fh.seek(0)
        arr = np.load(io.BytesIO(fh.read()), allow_pickle=False)
    return np.array(np.take(arr, index, axis=axis))
