"""Import job handlers (cpu queue): a staged CT upload becomes a study, a staged X-ray upload
an X-ray, through the same import code as the commands and the DICOM listener.

Each handler is idempotent: the object it creates is linked to the job by an audit event
("upload job #N: ...") written in the same transaction as the object, so a second run finds it
instead of importing again. A refusal fails the job with the importer's one-line message
(naming the user's files) and stores nothing. The staged files are deleted when the handler
ends, except after a CT upload that holds several series: they wait for the user's choice
(a follow-up job imports and deletes them). A transient database or broker error keeps them
too, since the job is retried."""

from __future__ import annotations

import tempfile
from pathlib import Path

from django.db import transaction
from django.urls import reverse

from webapp.core.audit import record
from webapp.core.models import AuditEvent
from webapp.jobs.registry import JobError, register
from webapp.jobs.runner import TRANSIENT_ERRORS
from webapp.records.ct_import import ImportRefused, MultipleSeries, import_ct_study
from webapp.records.models import CArm, CTStudy, Patient, XrayImage
from webapp.records.signals import announce_xray_stored
from webapp.records.upload_staging import (
    StagedUpload,
    refusal_message,
    series_rows,
    with_client_names,
)
from webapp.records.uploads import CT_JOB, XRAY_JOB
from webapp.records.volume_store import delete_volume_file
from webapp.records.xray_import import import_xray


def _marker(job) -> str:
    return f"upload job #{job.pk}:"


def created_by_job(model, job):
    """The object of ``model`` this job already created, or None."""
    event = (
        AuditEvent.objects.filter(
            action=AuditEvent.Action.CREATE,
            patient_id_ref=job.patient_id,
            object_type=model.__name__,
            detail__startswith=_marker(job),
        )
        .order_by("id")
        .first()
    )
    if event is None or not event.object_id.isdigit():
        return None
    return model.objects.filter(pk=int(event.object_id), patient_id=job.patient_id).first()


def _staged_and_patient(job) -> tuple[StagedUpload, Patient]:
    try:
        staged = StagedUpload.from_params(job.params)
    except ValueError as exc:
        raise JobError(str(exc)) from None
    patient = Patient.objects.filter(pk=job.patient_id).first()
    if patient is None:
        staged.discard()
        raise JobError("the patient no longer exists")
    return staged, patient


def _fetch(ctx, staged: StagedUpload, folder: Path) -> list[Path]:
    ctx.progress(0.05, f"fetching {len(staged.files)} uploaded file(s)", force=True)
    try:
        with ctx.stage("fetch"):
            return staged.fetch(folder)
    except FileNotFoundError:
        raise JobError("the uploaded files are no longer available; upload them again") from None


def _linked(job, obj, *, detail: str) -> None:
    """Write the audit event that links ``obj`` to ``job`` (inside the import's transaction)."""
    record(
        None,
        "create",
        patient=obj.patient,
        obj=obj,
        user=job.created_by,
        detail=f"{_marker(job)} {detail}",
    )


def _refused(staged: StagedUpload, exc: Exception) -> JobError:
    staged.discard()
    return JobError(with_client_names(refusal_message(exc), staged.names))


def _cleanup_unless_transient(staged: StagedUpload, exc: BaseException) -> None:
    if not isinstance(exc, TRANSIENT_ERRORS):
        staged.discard()


# --------------------------------------------------------------------------- CT


def _ct_result(study: CTStudy) -> dict:
    return {
        "outcome": "imported",
        "study_id": study.pk,
        "shape": study.shape,
        "result_url": reverse("records:study-detail", kwargs={"pk": study.pk}),
        "result_label": "Open the CT study",
    }


def _import_ct(job, patient, paths: list[Path]) -> CTStudy:
    params = job.params
    study = None
    try:
        with transaction.atomic():
            study = import_ct_study(
                paths[0] if len(paths) == 1 else paths,
                patient,
                user=job.created_by,
                series_uid=str(params.get("series_uid") or "") or None,
                deidentify=bool(params.get("deidentify")),
                description=str(params.get("description") or ""),
            )
            deid = " (de-identified)" if params.get("deidentify") else ""
            _linked(job, study, detail=f"CT web upload{deid}: {len(paths)} file(s)")
    except BaseException:
        if study is not None:
            delete_volume_file(study)
        raise
    return study


def _series_choice(job, patient, staged: StagedUpload, exc: MultipleSeries) -> dict:
    rows = series_rows(exc.series)
    if not rows or job.params.get("series_uid"):
        raise _refused(staged, exc)
    url = reverse("records:ct-choose-series", kwargs={"pk": patient.pk, "token": staged.token})
    return {
        "outcome": "choose_series",
        "series": rows,
        "result_url": url,
        "result_label": f"Choose one of the {len(rows)} series",
    }


@register(CT_JOB, queue="cpu", soft_time_limit=1800, max_attempts=2, label="CT import")
def import_ct_job(job, ctx) -> dict:
    """Import a staged CT upload (params: staging, files, names, description, deidentify,
    series_uid); returns the study's id and page, or the series to choose from."""
    staged, patient = _staged_and_patient(job)
    done = created_by_job(CTStudy, job)
    if done is not None:
        staged.discard()
        return _ct_result(done)
    try:
        with tempfile.TemporaryDirectory(prefix="orthofuse-import-") as tmp:
            paths = _fetch(ctx, staged, Path(tmp))
            ctx.progress(0.2, "reading and assembling the CT volume", force=True)
            with ctx.stage("import"):
                study = _import_ct(job, patient, paths)
    except MultipleSeries as exc:
        result = _series_choice(job, patient, staged, exc)
        ctx.progress(1.0, f"the upload holds {len(result['series'])} series: choose one")
        return result
    except ImportRefused as exc:
        raise _refused(staged, exc) from None
    except BaseException as exc:
        _cleanup_unless_transient(staged, exc)
        raise
    staged.discard()
    ctx.progress(1.0, f"CT study #{study.pk} imported")
    return _ct_result(study)


# --------------------------------------------------------------------------- X-ray


def _xray_result(xray: XrayImage) -> dict:
    return {
        "outcome": "imported",
        "xray_id": xray.pk,
        "result_url": reverse("records:xray-detail", kwargs={"pk": xray.pk}),
        "result_label": "Open the X-ray",
    }


def _import_xray(job, patient, path: Path) -> XrayImage:
    carm_id = job.params.get("carm_id")
    carm = CArm.objects.filter(pk=carm_id).first() if carm_id else None
    if carm_id and carm is None:
        raise ImportRefused("the chosen C-arm no longer exists")
    xray = None
    try:
        with transaction.atomic():
            xray = import_xray(
                path,
                patient,
                carm=carm,
                user=job.created_by,
                description=str(job.params.get("description") or ""),
            )
            _linked(job, xray, detail="X-ray web upload")
    except BaseException:
        if xray is not None and xray.original_file.name:
            xray.original_file.storage.delete(xray.original_file.name)
        raise
    return xray


@register(XRAY_JOB, queue="cpu", soft_time_limit=300, max_attempts=2, label="X-ray import")
def import_xray_job(job, ctx) -> dict:
    """Import a staged X-ray upload (params: staging, files, names, carm_id, description)."""
    staged, patient = _staged_and_patient(job)
    done = created_by_job(XrayImage, job)
    if done is not None:  # imported by an earlier run: its announcement may not have gone out
        staged.discard()
        announce_xray_stored(done, user=job.created_by)
        return _xray_result(done)
    try:
        with tempfile.TemporaryDirectory(prefix="orthofuse-import-") as tmp:
            [path] = _fetch(ctx, staged, Path(tmp))[:1]
            ctx.progress(0.3, "reading the image", force=True)
            with ctx.stage("import"):
                xray = _import_xray(job, patient, path)
    except ImportRefused as exc:
        raise _refused(staged, exc) from None
    except BaseException as exc:
        _cleanup_unless_transient(staged, exc)
        raise
    staged.discard()
    announce_xray_stored(xray, user=job.created_by)
    ctx.progress(1.0, f"X-ray #{xray.pk} imported")
    return _xray_result(xray)
