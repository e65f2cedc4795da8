"""Pixel data of DICOM CT objects: per-frame geometry of single- and multi-frame objects,
header checks before any decoding (voxel budget, payload against the declared matrix)
and decoding to HU frames (no Django imports)."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
from pydicom.dataset import Dataset
from pydicom.uid import UID

from dicomio.dataset import MAX_COMPRESSION_RATIO, _get, _int, _text, _ts_label, _ts_uid
from dicomio.errors import InputRefused, reraise_if_fatal

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
