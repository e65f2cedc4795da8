"""DICOM datasets, read safely: header helpers, the deflate-bomb check, and which
objects are CT images (no Django imports)."""

from __future__ import annotations

import warnings
import zlib

import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.filereader import _read_file_meta_info
from pydicom.uid import UID

from dicomio.errors import InputRefused, reraise_if_fatal
from dicomio.sources import (
    DEFAULT_MAX_BYTES,
    SourceFile,
    bomb_message,
    inflate_limit,
)

DEFAULT_MAX_VOXELS = 1024 * 1024 * 1024
# Memory one CT import may take at its peak (stored voxels plus float32 working copies).
DEFAULT_MAX_MEMORY_BYTES = 6 * 1024**3
MAX_COMPRESSION_RATIO = 5000.0
OUTSIDE_HU = -1024.0  # fill value where a resampled slice has no data (air)
CT_SOP_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.2",  # CT Image Storage
    "1.2.840.10008.5.1.4.1.1.2.1",  # Enhanced CT Image Storage
    "1.2.840.10008.5.1.4.1.1.2.2",  # Legacy Converted Enhanced CT
}
NIFTI_SUFFIXES = (".nii", ".nii.gz")


def _get(ds: Dataset, keyword: str, default=None):
    """An element value, or ``default`` when missing, empty or unparsable."""
    try:
        value = ds.get(keyword, default)
    except Exception:  # noqa: BLE001 - malformed values must not escape as 500s
        return default
    if value is None or (isinstance(value, str | bytes) and not value):
        return default
    return value


def _int(ds: Dataset, keyword: str, default: int) -> int:
    """An integer element, ``default`` when missing; refuses unparsable values."""
    value = _get(ds, keyword)
    if value is None:
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        raise InputRefused(f"{keyword} {str(value)[:20]!r} is not a number") from None


def _text(ds: Dataset, keyword: str) -> str:
    value = _get(ds, keyword, "")
    return str(value).strip() if value is not None else ""


def _ts_label(ds: Dataset) -> str:
    ts = _get(getattr(ds, "file_meta", Dataset()), "TransferSyntaxUID")
    if not ts:
        return "unknown transfer syntax"
    uid = UID(str(ts))
    name = uid.name if uid.is_transfer_syntax else "unknown"
    return f"{name} ({uid})"


def _ts_uid(ds: Dataset) -> str:
    ts = _get(getattr(ds, "file_meta", Dataset()), "TransferSyntaxUID")
    return str(ts) if ts else ""


# --------------------------------------------------------------------------- reading files


def _looks_like_dicom(ds: Dataset) -> bool:
    return any(k in ds for k in ("SOPClassUID", "Modality", "PixelData", "SeriesInstanceUID"))


DEFLATED_TS = "1.2.840.10008.1.2.1.99"


def _source_size(src: SourceFile) -> int:
    if src.data is not None:
        return len(src.data)
    assert src.path is not None
    return src.path.stat().st_size


def check_deflate_bomb(src: SourceFile, max_inflated: int) -> None:
    """Refuse a Deflated Explicit VR Little Endian file whose data set expands beyond
    ``inflate_limit`` (``MAX_INFLATE_RATIO`` times its size above a floor, at most
    ``max_inflated`` bytes). pydicom inflates such a data set in one go, so it is inflated
    here first in bounded steps, keeping nothing; other files pass untouched."""
    with src.open() as fh:
        head = fh.read(132)
        if len(head) < 132 or head[128:132] != b"DICM":
            return
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                meta = _read_file_meta_info(fh)
            except Exception:  # noqa: BLE001 - the full read refuses an unreadable header
                return
        if str(meta.get("TransferSyntaxUID", "")) != DEFLATED_TS:
            return
        compressed = _source_size(src) - fh.tell()
        limit = inflate_limit(compressed, max_inflated)
        inflater = zlib.decompressobj(-zlib.MAX_WBITS)
        total = 0
        while chunk := fh.read(1 << 16):
            while chunk and total <= limit:  # at most 1 MiB inflated at a time
                total += len(inflater.decompress(chunk, 1 << 20))
                chunk = inflater.unconsumed_tail
            if total > limit:
                if limit < max_inflated:
                    name = f"{src.name}: the deflated dataset"
                    raise InputRefused(bomb_message(name, limit, compressed, at_least=True))
                raise InputRefused(
                    f"{src.name}: the deflated dataset expands to more than the limit of "
                    f"{max_inflated} bytes"
                )
            if inflater.eof:
                return


def read_dataset(src: SourceFile, *, max_inflated: int = DEFAULT_MAX_BYTES) -> Dataset | None:
    """Parse one file. ``None`` when it is not DICOM at all; :class:`InputRefused` when it
    is DICOM but unreadable (truncated, corrupt) or a deflate bomb."""
    head = src.head(132)
    has_magic = len(head) >= 132 and head[128:132] == b"DICM"
    if has_magic:
        try:
            check_deflate_bomb(src, max_inflated)
        except zlib.error:
            raise InputRefused(f"{src.name}: the deflated dataset is corrupt") from None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            with src.open() as fh:
                ds = pydicom.dcmread(fh, force=not has_magic)
            # Touch every top-level element so that lazy parsing errors surface here.
            for _elem in ds:
                pass
        except InvalidDicomError:
            return None
        except BaseException as exc:  # noqa: BLE001 - any parser failure is a refusal
            reraise_if_fatal(exc)
            if not has_magic:
                return None
            raise InputRefused(
                f"{src.name} is not a readable DICOM file ({type(exc).__name__}: {str(exc)[:120]})"
            ) from None
    if not _looks_like_dicom(ds) and has_magic:
        # The full read can lose everything when the pixel data is cut short: keep the
        # header so that the refusal names the real problem.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                with src.open() as fh:
                    header = pydicom.dcmread(fh, stop_before_pixels=True)
            except Exception:  # noqa: BLE001
                header = None
        if header is not None and _looks_like_dicom(header):
            header._orthofuse_damaged_pixels = True
            return header
    if not _looks_like_dicom(ds):
        if has_magic:
            raise InputRefused(
                f"{src.name} is a damaged DICOM file (no readable data elements; truncated?)"
            )
        return None
    return ds


def _is_image(ds: Dataset) -> bool:
    return any(k in ds for k in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")) or (
        "Rows" in ds and "Columns" in ds
    )


def _modality(ds: Dataset) -> str:
    modality = _text(ds, "Modality").upper()
    if not modality and str(_get(ds, "SOPClassUID", "")) in CT_SOP_CLASSES:
        return "CT"
    return modality
