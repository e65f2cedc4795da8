"""Multi-frame X-rays (cine, Enhanced XA/XRF): single-frame data sets for the import.

``single_frames(ds, mode)`` returns ``[(frame_number, dataset)]`` (1-based frame numbers):
``mode="last"`` the last frame only, ``"all"`` every frame. A single-frame instance comes
back unchanged as ``[(1, ds)]``. Each derived data set keeps the SOP Instance UID of its
source (results link back to the source image and frame) and carries the geometry of its
frame: positioner angles, distances and pixel spacing found in the per-frame or shared
functional groups are copied to the top level, where the X-ray reader looks.
"""

from __future__ import annotations

import copy

from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate, get_frame
from pydicom.uid import UID

from webapp.dicomnet.status import PIXELS_REFUSED, StoreRefused

GEOMETRY_KEYWORDS = (
    "PositionerPrimaryAngle",
    "PositionerSecondaryAngle",
    "DistanceSourceToDetector",
    "DistanceSourceToPatient",
    "DistanceSourceToIsocenter",
    "ImagerPixelSpacing",
    "PixelSpacing",
)
_DROP = (
    "PerFrameFunctionalGroupsSequence",
    "FrameIncrementPointer",
    "FrameTime",
    "FrameTimeVector",
    "StartTrim",
    "StopTrim",
    "RecommendedDisplayFrameRate",
    "CineRate",
)


def _frame_count(ds: Dataset) -> int:
    try:
        return max(1, int(ds.get("NumberOfFrames") or 1))
    except (TypeError, ValueError):
        raise StoreRefused(PIXELS_REFUSED, "NumberOfFrames is not a number") from None


def _find(groups: Dataset | None, keyword: str):
    """``keyword`` in one functional-group item (one level of nested macros)."""
    if groups is None:
        return None
    for elem in groups:
        if elem.VR != "SQ":
            continue
        for item in elem.value:
            if keyword in item:
                return item[keyword].value
    return None


def _frame_pixels(ds: Dataset, index: int, n_frames: int) -> bytes:
    ts = ds.file_meta.get("TransferSyntaxUID") if hasattr(ds, "file_meta") else None
    if ts is not None and UID(ts).is_compressed:
        try:
            return encapsulate([get_frame(ds.PixelData, index, number_of_frames=n_frames)])
        except Exception as exc:  # noqa: BLE001 - damaged fragments are a refusal
            raise StoreRefused(PIXELS_REFUSED, f"frame {index + 1} cannot be read ({exc})") from None
    rows, cols = int(ds.Rows), int(ds.Columns)
    samples = int(ds.get("SamplesPerPixel") or 1)
    bits = int(ds.BitsAllocated)
    if bits % 8:
        raise StoreRefused(PIXELS_REFUSED, f"BitsAllocated {bits} is not a whole number of bytes")
    size = rows * cols * samples * bits // 8
    data = ds.PixelData
    if len(data) < size * n_frames:
        raise StoreRefused(PIXELS_REFUSED, f"pixel data holds fewer than {n_frames} frames")
    frame = data[index * size : (index + 1) * size]
    return frame + (b"\0" if len(frame) % 2 else b"")


def _one_frame(ds: Dataset, index: int, n_frames: int) -> Dataset:
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    frame_groups = per_frame[index] if per_frame is not None and len(per_frame) > index else None
    shared_seq = ds.get("SharedFunctionalGroupsSequence")
    shared = shared_seq[0] if shared_seq else None
    pixels = _frame_pixels(ds, index, n_frames)
    out = copy.deepcopy(ds)
    for keyword in GEOMETRY_KEYWORDS:
        if keyword in out:
            continue
        value = _find(frame_groups, keyword)
        if value is None:
            value = _find(shared, keyword)
        if value is not None:
            setattr(out, keyword, value)
    for keyword in _DROP:
        if keyword in out:
            delattr(out, keyword)
    out.NumberOfFrames = 1
    out.PixelData = pixels
    return out


def single_frames(ds: Dataset, mode: str = "last") -> list[tuple[int, Dataset]]:
    """The frames to import, as ``[(frame_number, single_frame_dataset)]``; see module."""
    n_frames = _frame_count(ds)
    if n_frames == 1 or "PixelData" not in ds:
        return [(1, ds)]
    indices = range(n_frames) if mode == "all" else [n_frames - 1]
    return [(i + 1, _one_frame(ds, i, n_frames)) for i in indices]
