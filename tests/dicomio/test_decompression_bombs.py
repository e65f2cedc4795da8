"""Decoders are bounded before they allocate: a small .nii.gz that declares a huge volume,
a truncated or forged NIfTI, and a PNG that declares 32768 x 32768 pixels are refused with
a one-line reason, and refusing them takes little memory."""

from __future__ import annotations

import gzip
import struct
import tracemalloc
import zlib

import numpy as np
import pytest

from dicomio import InputRefused, load_ct, read_xray


def _nifti_header(shape: tuple[int, int, int], *, datatype: int = 4, bitpix: int = 16) -> bytes:
    """A minimal little-endian NIfTI-1 header (348 bytes + 4 bytes extension flag)."""
    import nibabel as nib

    header = nib.Nifti1Header()
    header.set_data_shape(shape)
    header.set_data_dtype(np.int16 if datatype == 4 else np.float32)
    header.set_qform(np.eye(4), code=1)
    header["vox_offset"] = 352
    return header.binaryblock + b"\x00" * 4


def _zeros_gz(path, shape, *, chunk=8 * 2**20, limit=None) -> int:
    """Write a .nii.gz of zeros declaring ``shape`` int16 by streaming (small memory); with
    ``limit`` only that many voxel bytes are written (the header still declares them all)."""
    total = int(np.prod(shape)) * 2 if limit is None else int(limit)
    with gzip.open(path, "wb", compresslevel=1) as out:
        out.write(_nifti_header(shape))
        zero = bytes(chunk)
        left = total
        while left > 0:
            out.write(zero[: min(chunk, left)])
            left -= chunk
    return path.stat().st_size


def test_a_small_nifti_bomb_is_refused_with_little_memory(tmp_path):
    """A .nii.gz of a few MiB whose header declares 2^30 int16 voxels (10 GiB to import)."""
    path = tmp_path / "bomb.nii.gz"
    size = _zeros_gz(path, (1024, 1024, 1024), limit=64 * 2**20)
    assert size < 2 * 2**20
    tracemalloc.start()
    try:
        with pytest.raises(InputRefused, match="GiB of memory to import"):
            load_ct(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 50 * 2**20, f"refusing took {peak / 2**20:.0f} MiB"


def test_zero_padded_ct_parts_are_not_mistaken_for_bombs(tmp_path):
    import nibabel as nib

    data = np.zeros((160, 160, 80), np.int32)  # a cropped bone part: zeros almost everywhere
    data[70:90, 70:90, 30:50] = 900
    path = tmp_path / "part.nii.gz"
    nib.save(nib.Nifti1Image(data, np.eye(4)), str(path))
    assert int(data.nbytes) / path.stat().st_size > 200
    assert load_ct(path).array.shape == (80, 160, 160)


def test_a_declared_volume_beyond_the_memory_budget_is_refused_from_the_header(tmp_path):
    path = tmp_path / "huge.nii"
    path.write_bytes(_nifti_header((1024, 1024, 1024)) + b"\x00" * 1024)
    with pytest.raises(InputRefused, match="GiB of memory"):
        load_ct(path)


def test_a_truncated_or_forged_nifti_is_refused(tmp_path):
    plain = tmp_path / "short.nii"
    plain.write_bytes(_nifti_header((32, 32, 8)) + b"\x01" * 100)
    with pytest.raises(InputRefused, match="header declares"):
        load_ct(plain)
    forged = tmp_path / "forged.nii.gz"
    rng = np.random.default_rng(0)
    body = rng.integers(-1000, 1000, 32 * 32 * 4, dtype=np.int16).tobytes()
    forged.write_bytes(gzip.compress(_nifti_header((32, 32, 8)) + body))  # half the voxels
    with pytest.raises(InputRefused, match="does not hold"):
        load_ct(forged)


def _png_header(width: int, height: int, depth: int = 16) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, depth, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64))


def test_a_png_declaring_a_giant_image_is_refused_before_decoding():
    tracemalloc.start()
    try:
        with pytest.raises(InputRefused, match="32768 x 32768"):
            read_xray(_png_header(32768, 32768))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 20 * 2**20


def test_a_real_ct_still_loads(tmp_path):
    import nibabel as nib

    rng = np.random.default_rng(1)
    data = rng.integers(-1000, 1500, (24, 20, 10), dtype=np.int16)
    path = tmp_path / "ct.nii.gz"
    nib.save(nib.Nifti1Image(data, np.diag([0.8, 0.8, 2.0, 1.0])), str(path))
    volume = load_ct(path)
    assert volume.array.shape == (10, 20, 24)
