"""CT import service: files, folders, .zip or NIfTI -> a ready :class:`CTStudy`.

Public API (used by upload views, the API, Celery tasks and ``manage.py import_ct``)::

    study = import_ct_study(paths, patient, user=request.user, series_uid=None,
                            deidentify=False, description="")

* ``sources``: a path (file, folder, .zip, .nii/.nii.gz) or a list of DICOM file paths.
* Raises :class:`ImportRefused` (``ValueError`` with a one-line ``.message``) for anything
  that cannot be imported, and its subclass :class:`MultipleSeries` (``.series``: list of
  ``{"series_uid", "description", "n_slices", "modality", "series_number"}``) when the input
  holds several image series: ask the user, then call again with ``series_uid=``.
* Atomic: on any refusal no CTStudy row exists and no volume file is left in storage.
* Limits from settings: ``ORTHOFUSE_MAX_UPLOAD_BYTES`` (input size and zip expansion),
  ``ORTHOFUSE_MAX_VOXELS`` and ``ORTHOFUSE_IMPORT_MAX_MEMORY_BYTES`` (the memory one import
  may need, estimated from the declared sizes; all checked from headers before decoding).
* Records an AuditEvent ("create") for the new study.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from importlib import metadata as importlib_metadata
from pathlib import Path

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import transaction

from dicomio import InputRefused, MultipleSeriesFound, load_ct
from dicomio.dataset import DEFAULT_MAX_MEMORY_BYTES
from dicomio.errors import reraise_if_fatal
from webapp.core import audit
from webapp.records.models import CTStudy
from webapp.records.volume_store import delete_volume_file, save_volume

logger = logging.getLogger(__name__)

MAX_SKIPPED_LISTED = 20


class ImportRefused(InputRefused):
    """The input cannot be imported; ``message`` is one line naming the problem (the
    service-level twin of the reader's refusal, with the same one-line guarantee)."""


class MultipleSeries(ImportRefused):
    """Several image series in the input; ``series`` lists them for the user to choose."""

    def __init__(self, message: str, series: list[dict]) -> None:
        super().__init__(message)
        self.series = series


def _versions() -> dict:
    out = {}
    for dist in ("orthofuse", "pydicom", "nibabel", "dicognito", "numpy"):
        try:
            out[dist] = importlib_metadata.version(dist)
        except importlib_metadata.PackageNotFoundError:
            continue
    if "orthofuse" not in out:
        out["orthofuse"] = "0.1.0"
    return out


def import_memory_budget() -> int:
    """Bytes one import may need (``ORTHOFUSE_IMPORT_MAX_MEMORY_BYTES``, default the reader's
    6 GiB): declared sizes are checked against it before any voxel is read, so a shared
    worker never starts an allocation it cannot hold."""
    return int(getattr(settings, "ORTHOFUSE_IMPORT_MAX_MEMORY_BYTES", 0) or DEFAULT_MAX_MEMORY_BYTES)


def _parse_date(text: str) -> dt.date | None:
    try:
        return dt.datetime.strptime(text[:8], "%Y%m%d").date()
    except (TypeError, ValueError):
        return None


def import_ct_study(
    sources: Path | str | Sequence[Path | str],
    patient,
    *,
    user=None,
    series_uid: str | None = None,
    deidentify: bool = False,
    description: str = "",
) -> CTStudy:
    """Import one CT series or NIfTI volume for ``patient``; see the module docstring."""
    try:
        volume = load_ct(
            sources,
            series_uid=series_uid or None,
            deidentify=deidentify,
            max_voxels=int(settings.ORTHOFUSE_MAX_VOXELS),
            max_bytes=int(settings.ORTHOFUSE_MAX_UPLOAD_BYTES),
            max_memory_bytes=import_memory_budget(),
        )
    except MultipleSeriesFound as exc:
        raise MultipleSeries(exc.message, exc.series) from None
    except InputRefused as exc:
        raise ImportRefused(exc.message) from None
    except SoftTimeLimitExceeded:
        raise  # the job's time limit, not a fault of the input
    except MemoryError:
        raise ImportRefused("the volume is too large to load into memory") from None
    except BaseException as exc:  # noqa: BLE001 - never a 500 for bad input; log for developers
        reraise_if_fatal(exc)
        logger.exception("unexpected error while reading a CT input")
        raise ImportRefused(f"the input could not be read ({type(exc).__name__})") from None

    meta = volume.metadata
    skipped = list(meta.get("skipped", []))
    provenance = {
        "source_kind": meta.get("source_kind", ""),
        "source_format": meta.get("source_format", ""),
        "file_count": int(meta.get("file_count", 0)),
        "n_slices": int(meta.get("n_slices", volume.shape[0])),
        "transfer_syntaxes": list(meta.get("transfer_syntaxes", [])),
        "resampled": bool(meta.get("resampling")),
        "resampling": list(meta.get("resampling", [])),
        "gantry_tilt_deg": float(meta.get("gantry_tilt_deg", 0.0) or 0.0),
        "slice_spacing_mm": float(volume.spacing[2]),
        "localizers_dropped": int(meta.get("localizers_dropped", 0) or 0),
        "skipped_count": len(skipped),
        "skipped": skipped[:MAX_SKIPPED_LISTED],
        "deidentified": bool(deidentify),
        "manufacturer": meta.get("manufacturer", ""),
        "frame_of_reference_uid": str(meta.get("frame_of_reference_uid", "") or ""),
        "stored_as": "int16 HU .npy (k, j, i)",
        "software": _versions(),
        "imported_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    study = CTStudy(
        patient=patient,
        study_instance_uid=str(meta.get("study_instance_uid", ""))[:128],
        series_instance_uid=str(meta.get("series_instance_uid", ""))[:128],
        description=(
            description or meta.get("series_description") or meta.get("study_description") or "CT"
        )[:300],
        study_date=_parse_date(str(meta.get("study_date", ""))),
        modality=str(meta.get("modality", "CT"))[:16] or "CT",
        status=CTStudy.Status.READY,
        provenance=provenance,
        created_by=user if getattr(user, "is_authenticated", False) else None,
    )
    try:
        save_volume(study, volume)
        with transaction.atomic():
            study.save()
            audit.record(
                None,
                "create",
                patient=patient,
                obj=study,
                user=user,
                detail=f"CT import: {study.shape} voxels from {provenance['file_count']} file(s)",
            )
    except BaseException:
        delete_volume_file(study)
        raise
    return study
