"""Decompression bombs for the upload tests and ``manage.py bench_import_bombs``, built in
seconds: a deflate stream of zeros is periodic after a full flush, so one compressed block
is repeated instead of compressing gigabytes (the checksums are computed over the real
inflated bytes). Every file is complete and honest about what it holds (CRC, sizes); only
the forged ones (``dicom_bomb``, ``zip_bomb(declare=...)``) lie in their headers. No Django
imports."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np

BLOCK = 16 * 2**20  # zero bytes per repeated compressed block


def deflate_zeros(prefix: bytes, zeros: int, *, block: int = BLOCK) -> bytes:
    """Raw deflate data that inflates to ``prefix`` followed by ``zeros`` zero bytes."""
    packer = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    parts = [packer.compress(prefix), packer.flush(zlib.Z_FULL_FLUSH)]
    repeats, rest = divmod(zeros, block)
    if repeats:
        # after a full flush the compressor starts afresh: every block compresses the same
        parts.append((packer.compress(bytes(block)) + packer.flush(zlib.Z_FULL_FLUSH)) * repeats)
    parts.append(packer.compress(bytes(rest)) + packer.flush(zlib.Z_FINISH))
    return b"".join(parts)


def crc32_zeros(prefix: bytes, zeros: int, block: int = BLOCK) -> int:
    crc = zlib.crc32(prefix)
    chunk = bytes(min(block, zeros))
    left = zeros
    while left > 0:
        crc = zlib.crc32(chunk[: min(block, left)], crc)
        left -= block
    return crc


def gzip_zeros(prefix: bytes, zeros: int, *, block: int = BLOCK) -> bytes:
    """A gzip file (one member, honest CRC32 and ISIZE) of ``prefix`` + ``zeros`` zero bytes."""
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
    crc = crc32_zeros(prefix, zeros, block)
    size = (len(prefix) + zeros) % 2**32
    return header + deflate_zeros(prefix, zeros, block=block) + struct.pack("<II", crc, size)


def nifti_header(shape: tuple[int, ...]) -> bytes:
    """A NIfTI-1 header for int16 voxels of ``shape`` (348 bytes + 4-byte extension flag)."""
    import nibabel as nib

    header = nib.Nifti1Header()
    header.set_data_shape(shape)
    header.set_data_dtype(np.int16)
    header.set_qform(np.eye(4), code=1)
    header["vox_offset"] = 352
    return header.binaryblock + b"\x00" * 4


def nifti_gz_bomb(shape: tuple[int, int, int], *, extra_zeros: int = 0) -> bytes:
    """A .nii.gz of zeros holding every voxel ``shape`` declares (plus ``extra_zeros``)."""
    voxels = int(np.prod(shape))
    return gzip_zeros(nifti_header(shape), voxels * 2 + extra_zeros)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bomb(width: int, height: int, depth: int = 16) -> bytes:
    """A complete greyscale PNG of zeros: every row (filter byte + pixels) is in its IDAT."""
    raw = height * (1 + width * depth // 8)
    adler = ((raw % 65521) << 16) | 1  # adler32 of ``raw`` zero bytes
    stream = b"\x78\x9c" + deflate_zeros(b"", raw) + struct.pack(">I", adler)
    ihdr = struct.pack(">IIBBBBB", width, height, depth, 0, 0, 0, 0)
    idats = b"".join(
        _png_chunk(b"IDAT", stream[i : i + 2**20]) for i in range(0, len(stream), 2**20)
    )
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + idats + _png_chunk(b"IEND", b"")


def _dicom_dataset(rows: int, cols: int, *, modality: str, z: float = 0.0):
    """A minimal 16-bit image data set (no pixel data yet) and its file meta."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    sop_class = "1.2.840.10008.5.1.4.1.1.2" if modality == "CT" else "1.2.840.10008.5.1.4.1.1.12.1"
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, meta.MediaStorageSOPInstanceUID
    ds.Modality = modality
    ds.StudyInstanceUID, ds.SeriesInstanceUID = "1.2.826.0.1.1", "1.2.826.0.1.2"
    ds.ImagePositionPatient = [0.0, 0.0, z]
    ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    ds.PixelSpacing = [0.5, 0.5]
    ds.Rows, ds.Columns = rows, cols
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    return ds


def dicom_bomb(rows: int, cols: int, *, modality: str, payload: int, z: float = 0.0) -> bytes:
    """A Part 10 file whose header declares ``rows`` x ``cols`` 16-bit pixels while its pixel
    data holds only ``payload`` bytes (a forged header, uncompressed transfer syntax)."""
    ds = _dicom_dataset(rows, cols, modality=modality, z=z)
    ds.PixelData = bytes(payload)
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def deflated_dicom_bomb(rows: int, cols: int, *, modality: str = "CT") -> bytes:
    """A complete Deflated Explicit VR Little Endian file whose ``rows`` x ``cols`` 16-bit
    pixels are all there (zeros): honest, but it inflates about 1000 times."""
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_dataset, write_file_meta_info
    from pydicom.uid import DeflatedExplicitVRLittleEndian

    ds = _dicom_dataset(rows, cols, modality=modality)
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    body = DicomBytesIO()
    body.is_little_endian, body.is_implicit_VR = True, False
    write_dataset(body, ds)
    pixels = rows * cols * 2
    prefix = body.getvalue() + b"\xe0\x7f\x10\x00OW\x00\x00" + struct.pack("<I", pixels)
    meta = DicomBytesIO()
    write_file_meta_info(meta, ds.file_meta, enforce_standard=True)
    return b"\x00" * 128 + b"DICM" + meta.getvalue() + deflate_zeros(prefix, pixels)


def zip_bomb(members: dict[str, tuple[bytes, int]], *, declare: int | None = None) -> bytes:
    """A zip archive (deflate) whose member ``name`` holds ``prefix`` followed by ``zeros``
    zero bytes for each ``name: (prefix, zeros)``. Honest sizes and CRCs, unless ``declare``
    forges every member's declared uncompressed size (the CRC stays that of the real data)."""
    local, central = [], []
    offset = 0
    built: dict[tuple[bytes, int], tuple[bytes, int]] = {}  # identical members deflate once
    for name, (prefix, zeros) in members.items():
        if (prefix, zeros) not in built:
            built[prefix, zeros] = (deflate_zeros(prefix, zeros), crc32_zeros(prefix, zeros))
        data, crc = built[prefix, zeros]
        size = len(prefix) + zeros if declare is None else declare
        raw = name.encode()
        header = struct.pack(
            "<IHHHHHIIIHH", 0x04034B50, 20, 0, 8, 0, 0x21, crc, len(data), size, len(raw), 0
        )
        local.append(header + raw + data)
        central.append(
            struct.pack(
                "<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, 8, 0, 0x21, crc, len(data), size,
                len(raw), 0, 0, 0, 0, 0, offset,
            )
            + raw
        )
        offset += len(local[-1])
    directory = b"".join(central)
    end = struct.pack(
        "<IHHHHIIH", 0x06054B50, 0, 0, len(members), len(members), len(directory), offset, 0
    )
    return b"".join(local) + directory + end
