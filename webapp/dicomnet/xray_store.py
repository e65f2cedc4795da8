"""Storing a received X-ray at once: patient, C-arm, then the X-ray import of uploads.

One transaction per instance: a refusal (any :class:`StoreRefused`) leaves no patient, device,
image row or file behind. A multi-frame instance becomes one image (last frame) or one per
frame, by setting (``ORTHOFUSE_DICOM_MULTIFRAME``).
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

from django.conf import settings
from django.db import transaction
from pydicom.dataset import Dataset

from dicomio import InputRefused
from dicomio.ct import check_pixel_header
from webapp.dicomnet.db import serialized
from webapp.dicomnet.filing import carm_for, patient_for
from webapp.dicomnet.frames import single_frames
from webapp.dicomnet.instance import text
from webapp.dicomnet.status import IMPORT_REFUSED, PIXELS_REFUSED, StoreRefused
from webapp.records.ct_import import ImportRefused
from webapp.records.models import XrayImage
from webapp.records.signals import xray_stored
from webapp.records.xray_import import import_xray

logger = logging.getLogger(__name__)


def _write(ds: Dataset, raw: bytes | None, folder: Path) -> Path:
    path = folder / "instance.dcm"
    if raw is not None:
        path.write_bytes(raw)
    else:
        ds.save_as(path, enforce_file_format=True)
    return path


def store_xray(
    ds: Dataset, raw: bytes, *, care_team: str, multiframe: str, work_dir: Path, calling_ae: str
) -> list[XrayImage]:
    """Import ``ds`` (received as ``raw``) for the patient of its PatientID; returns the new
    images, or the existing ones when this SOP instance was stored before (a resend)."""
    try:
        check_pixel_header(ds, "the image", max_voxels=int(settings.ORTHOFUSE_MAX_VOXELS))
    except InputRefused as exc:
        raise StoreRefused(PIXELS_REFUSED, exc.message) from None
    frames = single_frames(ds, multiframe)
    work_dir.mkdir(parents=True, exist_ok=True)
    images = serialized(_attempt, ds, raw, frames, care_team, work_dir, calling_ae)
    for image in images:
        _arrived(image)
    return images


def _arrived(image: XrayImage) -> None:
    """The arrival hook (an open intra-operative session registers the shot); the X-ray is
    stored whatever happens here, so a failure is logged, never answered as a refusal."""
    try:
        serialized(xray_stored.send, sender=XrayImage, xray=image, user=None)
    except Exception:  # noqa: BLE001 - the instance is stored; the session page shows no tile
        logger.exception("the arrival hook failed for X-ray %s", image.pk)


def _attempt(ds, raw, frames, care_team, work_dir, calling_ae) -> list[XrayImage]:
    images: list[XrayImage] = []
    try:
        return _import_frames(ds, raw, frames, images, care_team, work_dir, calling_ae)
    except BaseException:
        _delete_files(images)
        raise


def _delete_files(images: list[XrayImage]) -> None:
    """Rolled-back rows: their files go too."""
    for image in images:
        if image.original_file.name:
            image.original_file.storage.delete(image.original_file.name)


def _import_frames(ds, raw, frames, images, care_team, work_dir, calling_ae) -> list[XrayImage]:
    multiframe_all = len(frames) > 1
    sop_uid = text(ds, "SOPInstanceUID")
    with transaction.atomic():
        patient, _ = patient_for(ds, care_team)
        existing = list(XrayImage.objects.filter(patient=patient, sop_instance_uid=sop_uid))
        if existing:
            return existing
        carm, _ = carm_for(ds)
        n_frames = len(frames) if multiframe_all else int(ds.get("NumberOfFrames") or 1)
        for number, frame in frames:
            note = f"frame {number} of {n_frames}; " if n_frames > 1 else ""
            description = f"{note}received from {calling_ae}: {text(ds, 'SeriesDescription')}"
            with tempfile.TemporaryDirectory(dir=work_dir) as tmp:
                path = _write(frame, raw if frame is ds else None, Path(tmp))
                try:
                    images.append(
                        import_xray(path, patient, carm=carm, description=description.strip(": "))
                    )
                except ImportRefused as exc:
                    raise StoreRefused(IMPORT_REFUSED, exc.message) from None
    return images
