"""X-ray import service: a DICOM (XA, RF, DX, CR) or 8/16-bit PNG file -> :class:`XrayImage`.

Public API (used by upload views, the API and ``manage.py import_xray``)::

    xray = import_xray(path, patient, carm=None, user=None, description="",
                       pixel_spacing_mm=None)   # (sx, sy) mm, column and row

Geometry comes from the DICOM header (DistanceSourceToDetector, DistanceSourceToPatient,
ImagerPixelSpacing or PixelSpacing -- DICOM order [row, column] = [sy, sx] --,
PositionerPrimaryAngle/SecondaryAngle). Missing values are filled from the chosen C-arm
(pixel spacing, source-to-detector distance); ``pixel_spacing_mm`` overrides both. A PNG has
no geometry: a C-arm with pixel spacing and source-to-detector distance is required.

The stored DICOM has its 128-byte preamble zeroed (CVE-2019-11687); names in storage are
``xrays/<uuid>.dcm|.png``, never the client's. Multi-frame DICOM: the first frame's geometry
is used and ``xray.import_notes`` says so (also appended to an empty description). Raises
:class:`webapp.records.ct_import.ImportRefused` with a one-line message on any refusal; then
nothing is stored. Records an AuditEvent ("create").

``load_xray_image(xray) -> XrayData`` reads a stored image back through storage and applies
the C-arm's flip/rotate flags (the device correction CONVENTIONS.md asks for at import: the
stored original stays untouched, every reader gets the corrected pixels).
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.core.files.base import ContentFile
from django.db import transaction
from django.utils import timezone

from dicomio import InputRefused, XrayData, read_xray, zero_preamble
from dicomio.errors import reraise_if_fatal
from dicomio.sources import human_bytes
from webapp.core import audit
from webapp.records.ct_import import ImportRefused
from webapp.records.models import XrayImage

logger = logging.getLogger(__name__)


def _acquired(text: str) -> dt.datetime | None:
    for fmt, n in (("%Y%m%d%H%M%S", 14), ("%Y%m%d%H%M", 12), ("%Y%m%d", 8)):
        if len(text) >= n:
            try:
                naive = dt.datetime.strptime(text[:n], fmt)
            except ValueError:
                continue
            return timezone.make_aware(naive) if settings.USE_TZ else naive
    return None


def _validated_spacing(value) -> tuple[float, float] | None:
    if value is None:
        return None
    try:
        sx, sy = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ImportRefused("pixel spacing must be two numbers (sx, sy) in mm") from None
    if not (sx > 0 and sy > 0 and sx < 10 and sy < 10):
        raise ImportRefused(f"pixel spacing ({sx}, {sy}) mm is not plausible")
    return sx, sy


def _read_checked(path: Path) -> XrayData:
    """Size limit first, then the reader (which checks declared sizes before decoding)."""
    try:
        size = path.stat().st_size
    except OSError:
        raise ImportRefused(f"{path.name or path} does not exist") from None
    limit = int(settings.ORTHOFUSE_MAX_UPLOAD_BYTES)
    if size > limit:
        raise ImportRefused(
            f"the file is {human_bytes(size)}, more than the limit of {human_bytes(limit)}"
        )
    try:
        return read_xray(path, max_voxels=int(settings.ORTHOFUSE_MAX_VOXELS))
    except InputRefused as exc:
        raise ImportRefused(exc.message) from None
    except SoftTimeLimitExceeded:
        raise  # the job's time limit, not a fault of the input
    except MemoryError:
        raise ImportRefused("the image is too large to load into memory") from None
    except BaseException as exc:  # noqa: BLE001 - never a 500 for bad input
        reraise_if_fatal(exc)
        logger.exception("unexpected error while reading an X-ray")
        raise ImportRefused(f"the image could not be read ({type(exc).__name__})") from None


def _carm_geometry(carm) -> tuple[tuple[float, float] | None, float | None]:
    """The C-arm's (sx, sy) pixel spacing and source-to-detector distance, where known."""
    if carm is None:
        return None, None
    spacing = None
    if carm.pixel_spacing_x_mm and carm.pixel_spacing_y_mm:
        spacing = (float(carm.pixel_spacing_x_mm), float(carm.pixel_spacing_y_mm))
    sdd = float(carm.source_to_detector_mm) if carm.source_to_detector_mm else None
    return spacing, sdd


def _geometry(data: XrayData, carm, override) -> tuple[list | None, float | None, list[str]]:
    """Pixel spacing and SDD from the header, the override or the C-arm, with notes saying
    where each came from; refuses a PNG without the C-arm geometry it needs."""
    notes = list(data.notes)
    spacing = data.geometry.get("pixel_spacing_mm")
    sdd = data.geometry.get("source_to_detector_mm")
    carm_spacing, carm_sdd = _carm_geometry(carm)
    if data.file_format == "png":
        if carm is None:
            raise ImportRefused(
                "a PNG X-ray carries no geometry: choose the C-arm it was taken with"
            )
        if override is None and carm_spacing is None:
            raise ImportRefused(
                f"C-arm {carm.name} has no pixel spacing; give it one or pass the spacing"
            )
        if carm_sdd is None:
            raise ImportRefused(f"C-arm {carm.name} has no source-to-detector distance")
    if override is not None:
        spacing = list(override)
        notes.append("pixel spacing given at import")
    elif spacing is None and carm_spacing is not None:
        spacing = list(carm_spacing)
        notes.append(f"pixel spacing from C-arm {carm.name}")
    if sdd is None and carm_sdd is not None:
        sdd = carm_sdd
        notes.append(f"source-to-detector distance from C-arm {carm.name}")
    if spacing is None:
        notes.append("no pixel spacing known")
    if sdd is None:
        notes.append("no source-to-detector distance known")
    return spacing, sdd, notes


def _store(xray: XrayImage, raw: bytes, data: XrayData, *, user) -> None:
    """Save the file and the row (with its audit event); no file is left on failure."""
    suffix = ".dcm" if data.file_format == "dicom" else ".png"
    try:
        xray.original_file.save("image" + suffix, ContentFile(raw), save=False)
        with transaction.atomic():
            xray.save()
            audit.record(
                None,
                "create",
                patient=xray.patient,
                obj=xray,
                user=user,
                detail=f"X-ray import ({data.file_format} {data.modality}); "
                + "; ".join(xray.import_notes),
            )
    except BaseException:
        name = xray.original_file.name
        if name and xray.original_file.storage.exists(name):
            xray.original_file.storage.delete(name)
        raise


def import_xray(
    path: Path | str,
    patient,
    *,
    carm=None,
    user=None,
    description: str = "",
    pixel_spacing_mm=None,
) -> XrayImage:
    """Import one X-ray image for ``patient``; see the module docstring."""
    path = Path(path)
    override = _validated_spacing(pixel_spacing_mm)
    data = _read_checked(path)
    spacing, sdd, notes = _geometry(data, carm, override)
    raw = path.read_bytes()
    if data.file_format == "dicom":
        raw = zero_preamble(raw)
    if not description:
        description = "; ".join(n for n in data.notes)[:300]
    geometry = data.geometry
    xray = XrayImage(
        patient=patient,
        carm=carm,
        description=description[:300],
        file_format=data.file_format,
        sop_instance_uid=data.sop_instance_uid[:128],
        modality=data.modality[:16],
        rows=data.height,
        cols=data.width,
        bits_stored=data.bits_stored,
        photometric_interpretation=data.photometric,
        distance_source_to_detector_mm=sdd,
        distance_source_to_patient_mm=geometry.get("source_to_patient_mm"),
        pixel_spacing_x_mm=spacing[0] if spacing else None,
        pixel_spacing_y_mm=spacing[1] if spacing else None,
        primary_angle_deg=geometry.get("primary_angle_deg"),
        secondary_angle_deg=geometry.get("secondary_angle_deg"),
        acquired_at=_acquired(data.acquired),
        created_by=user if getattr(user, "is_authenticated", False) else None,
    )
    xray.import_notes = notes
    _store(xray, raw, data, user=user)
    return xray


def load_xray_image(xray: XrayImage, *, reorient: bool = True) -> XrayData:
    """Read a stored X-ray back through storage (workers get no local paths).

    With ``reorient`` (default) the C-arm's flip/rotate flags are applied, so the pixels are
    the image a viewer at the source sees (CONVENTIONS.md); the geometry dict follows.
    """
    with xray.original_file.open("rb") as fh:
        raw = fh.read()
    carm = xray.carm if reorient else None
    try:
        return read_xray(
            raw,
            max_voxels=int(settings.ORTHOFUSE_MAX_VOXELS),
            flip_horizontal=bool(carm and carm.flip_horizontal),
            flip_vertical=bool(carm and carm.flip_vertical),
            rotate_deg=int(carm.rotate_deg) if carm else 0,
        )
    except InputRefused as exc:
        raise ImportRefused(exc.message) from None
