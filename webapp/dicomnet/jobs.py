"""DICOM network job handlers (cpu queue): sending results to the PACS, retrieving a CT
series from it."""

from __future__ import annotations

from django.conf import settings

from webapp.dicomnet.pacs import pacs_endpoints
from webapp.dicomnet.pull import PULL_JOB_KIND, PullRefused, pull_series
from webapp.dicomnet.results import ResultRefused
from webapp.dicomnet.send import JOB_KIND, result_set, send_result_set
from webapp.jobs.registry import JobError, register
from webapp.records.models import Patient


@register(JOB_KIND, queue="cpu", soft_time_limit=600, label="Send to PACS")
def send_to_pacs(job, ctx) -> dict:
    try:
        endpoints = pacs_endpoints()
    except ValueError as exc:
        raise JobError(str(exc)) from None
    if not endpoints:
        raise JobError("no PACS is configured (setting ORTHOFUSE_PACS)")
    try:
        with ctx.stage("build"):
            result = result_set(registration_id=job.params.get("registration_id"),
                                plan_version_id=job.params.get("plan_version_id"))
    except ResultRefused as exc:
        raise JobError(str(exc)) from None
    with ctx.stage("send"):
        outcome = send_result_set(
            result, endpoints, user=job.created_by, report=lambda f, m: ctx.progress(f, m),
            attempts=max(1, int(getattr(settings, "ORTHOFUSE_PACS_ATTEMPTS", 3))),
            delay_s=float(getattr(settings, "ORTHOFUSE_PACS_RETRY_DELAY_S", 2.0)),
        )
    if outcome["failed"]:
        reasons = "; ".join(item["reason"] for item in outcome["failed"])
        raise JobError(f"{len(outcome['failed'])} of {len(endpoints)} PACS failed: {reasons}"[:480])
    ctx.progress(1.0, f"sent {result.label} to {len(endpoints)} PACS")
    return outcome


@register(PULL_JOB_KIND, queue="cpu", soft_time_limit=1800, label="Pull CT from PACS")
def pull_ct_series(job, ctx) -> dict:
    patient = Patient.objects.filter(pk=job.params.get("patient_id")).first()
    if patient is None:
        raise JobError("the patient no longer exists")
    try:
        with ctx.stage("retrieve_import"):
            study, created = pull_series(
                patient, str(job.params.get("endpoint", "")), str(job.params.get("study_uid", "")),
                str(job.params.get("series_uid", "")), user=job.created_by,
                expected=job.params.get("expected"),
                report=lambda f, m: ctx.progress(f, m),
            )
    except PullRefused as exc:
        raise JobError(str(exc)) from None
    ctx.progress(1.0, f"CT study #{study.pk} {'imported' if created else 'was already here'}")
    return {"study_id": study.pk, "created": created, "shape": study.shape}
