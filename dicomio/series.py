"""DICOM CT series: reading and grouping the instances of an input, choosing a series and
assembling it into a CT volume on a regular grid (LPS affine; gantry tilt resampled;
uneven spacing refused). No Django imports."""

from __future__ import annotations

import warnings
from collections import OrderedDict
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset

from dicomio.dataset import (
    DEFAULT_MAX_VOXELS,
    OUTSIDE_HU,
    _get,
    _int,
    _is_image,
    _modality,
    _text,
    _ts_uid,
    read_dataset,
)
from dicomio.errors import InputRefused, MultipleSeriesFound
from dicomio.geometry import plan_stack
from dicomio.pixels import _Frame, _frames_of, check_pixel_header, decode_frames
from dicomio.sources import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_FILES,
    collect_sources,
)
from dicomio.volume import CTVolume

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
