"""Loading CT volumes from DICOM series (files, folders, .zip) and NIfTI (no Django imports).

Public entry point: :func:`load_ct` (re-exported as ``webapp.dicomio.load_ct``)::

    vol = load_ct("series_folder/")            # or a .zip, a list of files, a .nii/.nii.gz
    vol.array      # float32 HU, shape (slices, rows, cols) = (k, j, i)
    vol.affine     # 4x4, voxel (i, j, k, 1) -> LPS mm (DICOM patient frame)
    vol.metadata   # UIDs, description, date, transfer syntaxes, resampling notes, ...

Every problem raises :class:`~webapp.dicomio.errors.InputRefused` (a ``ValueError`` with a
one-line ``message``); an input with several image series raises
:class:`~webapp.dicomio.errors.MultipleSeriesFound` listing them, and ``series_uid=`` picks one.

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

import math
import warnings
import zlib
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import UID

from webapp.dicomio.errors import InputRefused, MultipleSeriesFound, reraise_if_fatal
from webapp.dicomio.geometry import plan_stack
from webapp.dicomio.sources import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_FILES,
    SourceFile,
    collect_sources,
)
from webapp.dicomio.volume import CTVolume

DEFAULT_MAX_VOXELS = 1024 * 1024 * 1024
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


def _check_deflate_bomb(src: SourceFile, max_inflated: int) -> None:
    """Refuse a deflated dataset that would expand beyond ``max_inflated`` bytes.

    pydicom inflates a Deflated Explicit VR Little Endian dataset in one go, so the size is
    checked first by inflating in bounded steps (nothing is kept).
    """
    with src.open() as fh:
        head = fh.read(132 + 12)
        if len(head) < 144 or head[132:136] != b"\x02\x00\x00\x00" or head[136:138] != b"UL":
            return  # no group length: pydicom reads the meta; no deflate pre-check possible
        group_length = int.from_bytes(head[140:144], "little")
        meta = fh.read(group_length)
        if DEFLATED_TS.encode() not in meta:
            return
        inflater = zlib.decompressobj(-zlib.MAX_WBITS)
        total = 0
        while True:
            chunk = fh.read(1 << 16)
            if not chunk:
                break
            data = inflater.decompress(chunk, max(1, max_inflated - total + 1))
            total += len(data)
            while inflater.unconsumed_tail and total <= max_inflated:
                data = inflater.decompress(inflater.unconsumed_tail, max_inflated - total + 1)
                total += len(data)
            if total > max_inflated:
                raise InputRefused(
                    f"{src.name}: the deflated dataset expands to more than the limit of "
                    f"{max_inflated} bytes"
                )


def read_dataset(src: SourceFile, *, max_inflated: int = DEFAULT_MAX_BYTES) -> Dataset | None:
    """Parse one file. ``None`` when it is not DICOM at all; :class:`InputRefused` when it
    is DICOM but unreadable (truncated, corrupt) or a deflate bomb."""
    head = src.head(132)
    has_magic = len(head) >= 132 and head[128:132] == b"DICM"
    if has_magic:
        try:
            _check_deflate_bomb(src, max_inflated)
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


# --------------------------------------------------------------------------- frames


@dataclass
class _Frame:
    ds: Dataset
    index: int | None  # frame number in a multi-frame dataset, None for single-frame
    source: str
    position: np.ndarray
    orientation: np.ndarray
    pixel_spacing: tuple[float, float]
    slope: float
    intercept: float
    instance: int


def _fg_value(ds: Dataset, frame: int, seq: str, keyword: str):
    """A value from the per-frame functional group, else the shared one (enhanced objects)."""
    holders = []
    per_frame = _get(ds, "PerFrameFunctionalGroupsSequence")
    if per_frame is not None and frame < len(per_frame):
        holders.append(per_frame[frame])
    shared = _get(ds, "SharedFunctionalGroupsSequence")
    if shared:
        holders.append(shared[0])
    for group in holders:
        items = _get(group, seq)
        if items:
            value = _get(items[0], keyword)
            if value is not None:
                return value
    return None


def _floats(value, n: int, what: str, src: str) -> np.ndarray:
    try:
        arr = np.array([float(v) for v in value], dtype=np.float64)
    except (TypeError, ValueError):
        raise InputRefused(f"{src}: {what} is not numeric ({value!r})") from None
    if arr.shape != (n,) or not np.all(np.isfinite(arr)):
        raise InputRefused(f"{src}: {what} must have {n} numbers, got {value!r}")
    return arr


def _frames_of(ds: Dataset, source: str) -> list[_Frame]:
    n_frames = _int(ds, "NumberOfFrames", 1) or 1
    enhanced = "PerFrameFunctionalGroupsSequence" in ds or "SharedFunctionalGroupsSequence" in ds
    try:
        instance = int(_get(ds, "InstanceNumber", 0) or 0)
    except (TypeError, ValueError):
        instance = 0
    frames = []
    if not enhanced:
        if n_frames > 1:
            raise InputRefused(
                f"{source}: multi-frame image with {n_frames} frames but no per-frame positions"
            )
        ipp, iop, ps = (
            _get(ds, k) for k in ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing")
        )
        slope = _get(ds, "RescaleSlope", 1.0)
        intercept = _get(ds, "RescaleIntercept", 0.0)
        rescale_type = _text(ds, "RescaleType").upper()
        entries = [(None, ipp, iop, ps, slope, intercept, rescale_type)]
    else:
        entries = []
        for f in range(n_frames):
            entries.append(
                (
                    f,
                    _fg_value(ds, f, "PlanePositionSequence", "ImagePositionPatient"),
                    _fg_value(ds, f, "PlaneOrientationSequence", "ImageOrientationPatient"),
                    _fg_value(ds, f, "PixelMeasuresSequence", "PixelSpacing"),
                    _fg_value(ds, f, "PixelValueTransformationSequence", "RescaleSlope") or 1.0,
                    _fg_value(ds, f, "PixelValueTransformationSequence", "RescaleIntercept") or 0.0,
                    str(
                        _fg_value(ds, f, "PixelValueTransformationSequence", "RescaleType") or ""
                    ).upper(),
                )
            )
    for index, ipp, iop, ps, slope, intercept, rescale_type in entries:
        if ipp is None:
            raise InputRefused(
                f"{source}: no ImagePositionPatient, so the slice position is unknown"
            )
        if iop is None:
            raise InputRefused(
                f"{source}: no ImageOrientationPatient, so the slice orientation is unknown"
            )
        if ps is None:
            raise InputRefused(f"{source}: no PixelSpacing, so the voxel size is unknown")
        if rescale_type and rescale_type != "HU":
            raise InputRefused(
                f"{source}: pixel values are not Hounsfield units (RescaleType {rescale_type})"
            )
        ps_arr = _floats(ps, 2, "PixelSpacing", source)
        if np.any(ps_arr <= 0):
            raise InputRefused(f"{source}: PixelSpacing {list(ps_arr)} is not positive")
        try:
            slope_f, intercept_f = float(slope), float(intercept)
        except (TypeError, ValueError):
            raise InputRefused(f"{source}: RescaleSlope/RescaleIntercept are not numeric") from None
        if not (math.isfinite(slope_f) and math.isfinite(intercept_f)) or slope_f == 0:
            raise InputRefused(f"{source}: RescaleSlope/RescaleIntercept are invalid")
        frames.append(
            _Frame(
                ds=ds,
                index=index,
                source=source if index is None else f"{source} frame {index + 1}",
                position=_floats(ipp, 3, "ImagePositionPatient", source),
                orientation=_floats(iop, 6, "ImageOrientationPatient", source),
                pixel_spacing=(float(ps_arr[0]), float(ps_arr[1])),
                slope=slope_f,
                intercept=intercept_f,
                instance=instance * 100000 + (index or 0),
            )
        )
    return frames


# --------------------------------------------------------------------------- safety checks


def check_pixel_header(ds: Dataset, source: str, *, max_voxels: int) -> int:
    """Refuse, before decoding, a pixel header that is implausible for its payload.

    Returns the number of voxels declared. Checks: pixel data present, 1 sample per pixel,
    supported bit depth, Rows x Columns x frames within ``max_voxels``, and the payload size:
    uncompressed data must hold the declared bytes; compressed data may not claim to expand
    more than ``MAX_COMPRESSION_RATIO`` times.
    """
    if getattr(ds, "_orthofuse_damaged_pixels", False):
        raise InputRefused(f"{source}: the pixel data is truncated or damaged")
    if "PixelData" not in ds:
        if "FloatPixelData" in ds or "DoubleFloatPixelData" in ds:
            raise InputRefused(f"{source}: floating-point pixel data is not a CT image")
        raise InputRefused(f"{source}: the file has no pixel data")
    try:
        rows = _int(ds, "Rows", 0)
        cols = _int(ds, "Columns", 0)
        frames = _int(ds, "NumberOfFrames", 1) or 1
        spp = _int(ds, "SamplesPerPixel", 1) or 1
        bits = _int(ds, "BitsAllocated", 0)
    except InputRefused as exc:
        raise InputRefused(f"{source}: {exc.message}") from None
    if rows <= 0 or cols <= 0 or frames <= 0:
        raise InputRefused(f"{source}: invalid image size {rows} x {cols} x {frames} frames")
    if spp != 1:
        raise InputRefused(f"{source}: colour image ({spp} samples per pixel) is not a CT image")
    if bits not in (8, 16, 32):
        raise InputRefused(f"{source}: unsupported BitsAllocated {bits} for a CT image")
    voxels = rows * cols * frames
    if voxels > max_voxels:
        raise InputRefused(
            f"{source}: the header declares {rows} x {cols} x {frames} = {voxels} voxels, "
            f"more than the limit of {max_voxels}"
        )
    expected = voxels * bits // 8
    try:
        payload = len(ds.PixelData)
    except Exception:  # noqa: BLE001
        raise InputRefused(f"{source}: the pixel data cannot be read") from None
    ts = _ts_uid(ds)
    compressed = bool(ts) and UID(ts).is_transfer_syntax and UID(ts).is_compressed
    if not compressed and payload < expected:
        raise InputRefused(
            f"{source}: pixel data is {payload} bytes but the header declares {rows} x {cols} x "
            f"{frames} at {bits} bits = {expected} bytes (truncated file or forged header)"
        )
    if compressed and expected > MAX_COMPRESSION_RATIO * max(payload, 1):
        raise InputRefused(
            f"{source}: compressed pixel data of {payload} bytes claims to expand to {expected} "
            f"bytes ({rows} x {cols} x {frames}); refused as implausible"
        )
    return voxels


def decode_frames(ds: Dataset, source: str) -> np.ndarray:
    """Decode all frames as (frames, rows, cols) stored values, or refuse naming the syntax."""
    label = _ts_label(ds)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            arr = ds.pixel_array
        except NotImplementedError:
            raise InputRefused(
                f"{source}: pixel data in transfer syntax {label} cannot be decoded by the "
                "installed decoders"
            ) from None
        except BaseException as exc:  # noqa: BLE001 - corrupt codestreams raise many types
            reraise_if_fatal(exc)
            raise InputRefused(
                f"{source}: pixel data in transfer syntax {label} could not be decoded "
                f"({type(exc).__name__}: {str(exc)[:120]})"
            ) from None
    arr = np.asarray(arr)
    rows, cols = int(ds.Rows), int(ds.Columns)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3 or arr.shape[1:] != (rows, cols):
        raise InputRefused(
            f"{source}: decoded pixels have shape {arr.shape}, expected {rows} x {cols}"
        )
    return arr


# --------------------------------------------------------------------------- series


def _deidentify(datasets: list[tuple[str, Dataset]]) -> None:
    from dicognito.anonymizer import Anonymizer

    anonymizer = Anonymizer()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _name, ds in datasets:
            anonymizer.anonymize(ds)


def read_datasets(
    sources,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_files: int = DEFAULT_MAX_FILES,
) -> tuple[list[tuple[str, Dataset]], dict]:
    """Read every DICOM file of the input. Returns ``[(name, dataset)]`` and provenance info."""
    collected = collect_sources(sources, max_bytes=max_bytes, max_files=max_files)
    datasets: list[tuple[str, Dataset]] = []
    not_dicom: list[str] = []
    for src in collected.files:
        ds = read_dataset(src, max_inflated=max_bytes)
        if ds is None:
            not_dicom.append(src.name)
            continue
        datasets.append((src.name, ds))
    if not datasets:
        if len(collected.files) == 1:
            raise InputRefused(f"{collected.files[0].name} is not a DICOM or NIfTI file")
        raise InputRefused(f"no DICOM files among the {len(collected.files)} input files")
    info = {
        "source_kind": collected.kind,
        "file_count": len(collected.files),
        "skipped": collected.skipped + [f"{name} (not DICOM)" for name in not_dicom],
    }
    return datasets, info


def group_series(
    datasets: list[tuple[str, Dataset]],
) -> OrderedDict[str, list[tuple[str, Dataset]]]:
    """Group image datasets by SeriesInstanceUID (missing UID: one group keyed "")."""
    groups: OrderedDict[str, list[tuple[str, Dataset]]] = OrderedDict()
    for name, ds in datasets:
        if not _is_image(ds):
            continue
        groups.setdefault(_text(ds, "SeriesInstanceUID"), []).append((name, ds))
    return groups


def describe_series(groups: OrderedDict[str, list[tuple[str, Dataset]]]) -> list[dict]:
    """The series list shown to a user who must choose (uid, description, slices, modality)."""
    out = []
    for uid, items in groups.items():
        first = items[0][1]
        n_slices = 0
        for _n, ds in items:
            try:
                n_slices += _int(ds, "NumberOfFrames", 1) or 1
            except InputRefused:
                n_slices += 1
        out.append(
            {
                "series_uid": uid,
                "description": _text(first, "SeriesDescription"),
                "n_slices": n_slices,
                "modality": _modality(first) or "unknown",
                "series_number": _text(first, "SeriesNumber"),
            }
        )
    return out


def list_series(sources, **limits) -> list[dict]:
    """The image series found in the input (see :func:`describe_series`)."""
    datasets, _info = read_datasets(sources, **limits)
    return describe_series(group_series(datasets))


def _select_series(datasets, series_uid: str | None) -> list[tuple[str, Dataset]]:
    groups = group_series(datasets)
    if not groups:
        kinds = sorted({_modality(ds) for _n, ds in datasets} - {""})
        if len(kinds) == 1:
            raise InputRefused(f"not a CT image (modality {kinds[0]})")
        if kinds:
            raise InputRefused(f"not a CT image (modalities {', '.join(kinds)}; no pixel data)")
        raise InputRefused("not a CT image (a DICOM object with no pixel data and no modality)")
    if series_uid is not None:
        if series_uid not in groups:
            raise InputRefused(f"series {series_uid} is not in the input")
        return groups[series_uid]
    if len(groups) > 1:
        raise MultipleSeriesFound(describe_series(groups))
    return next(iter(groups.values()))


def _assemble(
    items: list[tuple[str, Dataset]], *, max_voxels: int
) -> tuple[np.ndarray, np.ndarray, dict]:
    first = items[0][1]
    modality = _modality(first)
    if modality != "CT":
        raise InputRefused(f"not a CT image (modality {modality or 'missing'})")
    others = {(_modality(ds) or "missing") for _n, ds in items} - {"CT"}
    if others:
        raise InputRefused(
            f"the series mixes CT with other modalities ({', '.join(sorted(others))})"
        )

    total = 0
    for name, ds in items:
        total += check_pixel_header(ds, name, max_voxels=max_voxels)
        if total > max_voxels:
            raise InputRefused(f"the series has more than the limit of {max_voxels} voxels")

    frames: list[_Frame] = []
    for name, ds in items:
        frames.extend(_frames_of(ds, name))
    image_types = [[str(t).upper() for t in (_get(f.ds, "ImageType", []) or [])] for f in frames]
    keep = [f for f, t in zip(frames, image_types, strict=True) if "LOCALIZER" not in t]
    dropped_localizers = len(frames) - len(keep)
    if keep:
        frames = keep
    sizes = {(int(f.ds.Rows), int(f.ds.Columns)) for f in frames}
    if len(sizes) > 1:
        raise InputRefused(
            f"the slices have different sizes ({', '.join(f'{r}x{c}' for r, c in sorted(sizes))})"
        )
    ref_iop = frames[0].orientation
    if any(np.max(np.abs(f.orientation - ref_iop)) > 1e-4 for f in frames):
        raise InputRefused(
            "the slices have different orientations (more than one stack in the series)"
        )
    ref_ps = frames[0].pixel_spacing
    if any(
        max(abs(a - b) for a, b in zip(f.pixel_spacing, ref_ps, strict=True)) > 1e-4 for f in frames
    ):
        raise InputRefused("the slices have different pixel spacings")

    rows, cols = next(iter(sizes))

    def decode(frame_list: list[_Frame]) -> np.ndarray:
        """HU slices in ``frame_list`` order, filled into one preallocated float32 array."""
        volume = np.empty((len(frame_list), rows, cols), dtype=np.float32)
        cache: dict[int, np.ndarray] = {}
        remaining = {}
        for f in frame_list:
            remaining[id(f.ds)] = remaining.get(id(f.ds), 0) + 1
        for k, f in enumerate(frame_list):
            key = id(f.ds)
            if key not in cache:
                cache[key] = decode_frames(f.ds, f.source)
            volume[k] = cache[key][f.index or 0]
            volume[k] *= np.float32(f.slope)
            volume[k] += np.float32(f.intercept)
            remaining[key] -= 1
            if remaining[key] == 0:
                del cache[key]  # keep at most one decoded dataset in memory
        return volume

    try:
        plan = plan_stack(
            np.array([f.position for f in frames]),
            ref_iop,
            ref_ps,
            instance_numbers=[f.instance for f in frames],
        )
    except InputRefused:
        if len(frames) == 1:
            decode(frames)  # a single undecodable slice: name the transfer syntax first
        raise
    ordered = [frames[i] for i in plan.order]
    volume = decode(ordered)
    if plan.needs_resampling:
        from scipy import ndimage

        for k in range(volume.shape[0]):
            shift = plan.shifts_px[k]
            if np.any(np.abs(shift) > 1e-6):
                volume[k] = ndimage.shift(
                    volume[k], shift, order=1, mode="constant", cval=OUTSIDE_HU, prefilter=False
                )
    meta = {
        "modality": "CT",
        "study_instance_uid": _text(first, "StudyInstanceUID"),
        "series_instance_uid": _text(first, "SeriesInstanceUID"),
        "series_description": _text(first, "SeriesDescription"),
        "study_description": _text(first, "StudyDescription"),
        "study_date": _text(first, "StudyDate") or _text(first, "SeriesDate"),
        "frame_of_reference_uid": _text(first, "FrameOfReferenceUID"),
        "patient_name": _text(first, "PatientName"),
        "patient_id": _text(first, "PatientID"),
        "manufacturer": _text(first, "Manufacturer"),
        "transfer_syntaxes": sorted({_ts_uid(ds) for _n, ds in items if _ts_uid(ds)}),
        "n_slices": len(ordered),
        "slice_spacing_mm": plan.slice_spacing_mm,
        "gantry_tilt_deg": round(plan.tilt_deg, 3),
        "resampling": list(plan.notes),
        "localizers_dropped": dropped_localizers,
    }
    return volume, plan.affine, meta


def load_dicom_series(
    sources: Path | str | Iterable[Path | str],
    *,
    series_uid: str | None = None,
    deidentify: bool = False,
    max_voxels: int = DEFAULT_MAX_VOXELS,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_files: int = DEFAULT_MAX_FILES,
) -> CTVolume:
    """Load one CT series from DICOM files, folders or a .zip (see the module docstring)."""
    datasets, info = read_datasets(sources, max_bytes=max_bytes, max_files=max_files)
    # Select by the original UIDs (the ones a user was shown), then de-identify.
    items = _select_series(datasets, series_uid)
    if deidentify:
        _deidentify(items)
    array, affine, meta = _assemble(items, max_voxels=max_voxels)
    meta.update(info)
    meta["source_format"] = "dicom"
    meta["deidentified"] = bool(deidentify)
    return CTVolume(array=array, affine=affine, metadata=meta)


# --------------------------------------------------------------------------- NIfTI


def is_nifti(path: Path) -> bool:
    return path.is_file() and path.name.lower().endswith(NIFTI_SUFFIXES)


def load_nifti(path: Path | str, *, max_voxels: int = DEFAULT_MAX_VOXELS) -> CTVolume:
    """Load a NIfTI CT (values taken as HU after the header's scl_slope/scl_inter).

    NIfTI world coordinates are RAS; the affine is converted to LPS by negating its first two
    rows, and the (i, j, k) array is transposed to (k, j, i).
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


# --------------------------------------------------------------------------- entry point


def load_ct(
    path: Path | str | Iterable[Path | str],
    *,
    series_uid: str | None = None,
    deidentify: bool = False,
    max_voxels: int = DEFAULT_MAX_VOXELS,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_files: int = DEFAULT_MAX_FILES,
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
        return load_nifti(path, max_voxels=max_voxels)
    return load_dicom_series(
        path,
        series_uid=series_uid,
        deidentify=deidentify,
        max_voxels=max_voxels,
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
