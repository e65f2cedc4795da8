"""What the listener does with one received instance, and with one complete CT series.

``Receiver.receive(raw, sop_class_uid, calling_ae)`` returns a one-line outcome or raises
:class:`StoreRefused` (nothing stored). ``Receiver.import_series(staged)`` turns a complete CT
series into one CT study through the upload import (``import_ct_study``), or audits why not.
Both are independent of the network code, so tests and the server share them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import pydicom
from django.conf import settings
from django.db import transaction

from dicomio import InputRefused
from dicomio.ct import check_pixel_header, decode_frames
from webapp.core import audit
from webapp.core.models import AuditEvent
from webapp.dicomnet.config import NodeConfig
from webapp.dicomnet.db import serialized
from webapp.dicomnet.filing import patient_for
from webapp.dicomnet.instance import kind_of, parse_instance, patient_id, text
from webapp.dicomnet.staging import SeriesStager, StagedSeries
from webapp.dicomnet.status import PIXELS_REFUSED, StoreRefused
from webapp.dicomnet.xray_store import store_xray
from webapp.records.ct_import import ImportRefused, import_ct_study
from webapp.records.models import CTStudy, Patient

logger = logging.getLogger(__name__)

REFUSED_ACTION = AuditEvent.Action.DICOM_REFUSED  # refusals by the DICOM node


def audit_refusal(detail: str, mrn: str = "") -> None:
    """Audit a refusal (instance, series or association); never raises."""
    try:
        patient = Patient.objects.filter(mrn=mrn).first() if mrn else None
        if mrn and patient is None:
            detail = f"{detail} (PatientID {mrn})"
        serialized(audit.record, None, REFUSED_ACTION, patient=patient, detail=detail)
    except Exception:  # noqa: BLE001 - auditing must not take the listener down
        logger.exception("could not audit a DICOM refusal: %s", detail)


@dataclass(frozen=True)
class Outcome:
    """What happened to one stored instance; ``series_uid`` is set for a staged CT slice."""

    message: str
    series_uid: str = ""


class Receiver:
    """Files received instances for one node configuration."""

    def __init__(self, config: NodeConfig) -> None:
        self.config = config
        self.stager = SeriesStager(
            config.staging_dir, max_series_bytes=int(settings.ORTHOFUSE_MAX_UPLOAD_BYTES)
        )

    def receive(
        self, raw: bytes, sop_class_uid: str, calling_ae: str, sop_instance_uid: str = ""
    ) -> Outcome:
        """Store or stage one instance; returns what happened. The UIDs are the C-STORE
        request's (Affected SOP Class / Instance UID)."""
        limit = int(settings.ORTHOFUSE_MAX_UPLOAD_BYTES)
        if len(raw) > limit:
            raise StoreRefused(PIXELS_REFUSED, f"instance of {len(raw)} bytes exceeds {limit}")
        ds = parse_instance(raw, sop_class_uid, sop_instance_uid)
        try:
            return self._file(ds, raw, sop_class_uid, calling_ae)
        except StoreRefused as refused:
            refused.mrn = text(ds, "PatientID")[:64]  # for the audit trail
            raise

    def _file(self, ds, raw: bytes, sop_class_uid: str, calling_ae: str) -> Outcome:
        kind = kind_of(ds, sop_class_uid)
        if kind == "xray":
            images = store_xray(
                ds,
                raw,
                care_team=self.config.care_team,
                multiframe=self.config.multiframe,
                work_dir=self.stager.work_dir,
                calling_ae=calling_ae,
            )
            return Outcome(f"X-ray stored as image(s) {', '.join(str(i.pk) for i in images)}")
        patient_id(ds)
        try:
            check_pixel_header(ds, "the slice", max_voxels=int(settings.ORTHOFUSE_MAX_VOXELS))
            decode_frames(ds, "the slice")
        except InputRefused as exc:
            raise StoreRefused(PIXELS_REFUSED, exc.message) from None
        count = self.stager.stage(ds, raw, calling_ae)
        return Outcome(f"CT instance staged ({count} in its series so far)",
                       text(ds, "SeriesInstanceUID"))

    def import_series(self, staged: StagedSeries) -> CTStudy | None:
        """Import a complete series as one CT study; refusals are audited. Files go after."""
        manifest = staged.manifest
        mrn = str(manifest.get("mrn", ""))
        where = f"CT series {staged.series_uid} ({len(staged.files)} instances) from " \
                f"{manifest.get('calling_ae', '?')}"
        created = None
        incomplete = _incomplete(manifest, len(staged.files))
        if incomplete:
            self.stager.done(staged)
            logger.warning("%s refused: %s", where, incomplete)
            audit_refusal(f"{where} refused: {incomplete}", mrn)
            return None
        try:
            header = pydicom.dcmread(staged.files[0], stop_before_pixels=True, force=True)
            patient, is_new = serialized(patient_for, header, self.config.care_team)
            created = patient if is_new else None
            # no transaction around the (long) volume load: the import saves atomically
            study = import_ct_study(staged.files, patient, series_uid=staged.series_uid)
            created = None
            logger.info("%s became CT study %s", where, study.pk)
            return study
        except (ImportRefused, StoreRefused) as exc:
            reason = f"refused: {exc.message}"
            logger.warning("%s %s", where, reason)
        except Exception as exc:  # noqa: BLE001 - one bad series must not stop the node
            logger.exception("%s could not be imported", where)
            reason = f"failed: internal error ({type(exc).__name__})"
        finally:
            self.stager.done(staged)
        if created is not None:  # a patient made for a refused series goes again
            _drop_if_empty(created)
        audit_refusal(f"{where} {reason}", mrn)
        return None


def _incomplete(manifest: dict, n_files: int) -> str:
    """Why a staged series must not become a study ('' when nothing speaks against it)."""
    if manifest.get("too_big"):
        return "the series exceeded the size limit"
    if manifest.get("interrupted"):
        return "the sending association was aborted before the series was complete; resend it"
    expected = manifest.get("expected") if manifest.get("expected_agrees") else None
    if expected and n_files < expected:
        return f"incomplete series: {n_files} of the {expected} instances its header announces"
    return ""


def _drop_if_empty(patient: Patient) -> None:
    def drop() -> None:
        with transaction.atomic():
            if not patient.ct_studies.exists() and not patient.xrays.exists():
                patient.delete()

    try:
        serialized(drop)
    except Exception:  # noqa: BLE001 - a leftover empty patient is harmless
        logger.exception("could not remove the empty patient %s", patient.mrn)

