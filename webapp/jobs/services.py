"""Starting, cancelling and recovering jobs. Views, the API and other apps call these."""

from __future__ import annotations

import json
import logging
import uuid
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q, QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.module_loading import import_string

from webapp.core.audit import record
from webapp.jobs.conf import stale_after_s
from webapp.jobs.models import Job
from webapp.jobs.registry import JobError, JobSpec, all_specs, get_spec
from webapp.jobs.runner import human_seconds, one_line

log = logging.getLogger(__name__)


def visible_jobs(user, queryset: QuerySet[Job] | None = None) -> QuerySet[Job]:
    """Jobs ``user`` may see: site admins all; others the jobs of patients they may see
    (through the care-team scope named by ``settings.JOB_PATIENT_SCOPE``, records' access
    rule: jobs is infrastructure and imports no domain app) and their own jobs that belong
    to no patient."""
    rows = Job.objects.all() if queryset is None else queryset
    if not getattr(user, "is_authenticated", False):
        return rows.none()
    if user.is_superuser:
        return rows
    scope = import_string(settings.JOB_PATIENT_SCOPE)
    of_patients = scope(Job.objects.filter(patient__isnull=False), user, patient_path="patient")
    return rows.filter(
        Q(patient__isnull=True, created_by=user) | Q(pk__in=of_patients.values("pk"))
    )


def _send(job_id: int, spec: JobSpec, task_id: str) -> None:
    """Publish the job's message; a broker that cannot be reached fails the job with a reason."""
    from webapp.jobs.tasks import run_job

    try:
        run_job.apply_async(
            args=[job_id],
            queue=spec.queue,
            task_id=task_id,
            soft_time_limit=spec.soft_time_limit,
            time_limit=spec.time_limit,
        )
    except Exception as exc:  # noqa: BLE001 - any publishing failure leaves a clear failed job
        log.exception("could not publish job %s", job_id)
        Job.objects.filter(pk=job_id, status=Job.Status.QUEUED).update(
            status=Job.Status.FAILED,
            message="",
            error=f"could not reach the job queue: {type(exc).__name__}: {one_line(exc)}",
            finished_at=timezone.now(),
        )


def submit_job(
    kind: str,
    *,
    params: dict[str, Any] | None = None,
    user=None,
    patient=None,
    request: HttpRequest | None = None,
) -> Job:
    """Create a queued Job of ``kind``, audit it (``job_start``) and send it to its queue once
    the surrounding transaction commits. Raises :class:`JobError` for an unknown kind or
    parameters that are not JSON."""
    spec = get_spec(kind)
    params = dict(params or {})
    try:
        params = json.loads(json.dumps(params, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise JobError(f"job parameters must be JSON: {exc}") from None
    if user is None and request is not None:
        user = request.user
    if user is not None and not getattr(user, "is_authenticated", False):
        user = None
    task_id = str(uuid.uuid4())
    with transaction.atomic():
        job = Job.objects.create(
            kind=kind,
            queue=spec.queue,
            params=params,
            created_by=user,
            patient=patient,
            message="waiting for a worker",
            task_id=task_id,
            sent_at=timezone.now(),
        )
        record(
            request,
            "job_start",
            patient=patient,
            obj=job,
            detail=f"{kind} on queue {spec.queue}",
            user=user,
        )
        transaction.on_commit(lambda: _send(job.pk, spec, task_id))
    return job


def cancel_job(job: Job, user=None, *, request: HttpRequest | None = None) -> Job:
    """Ask ``job`` to stop. A queued job is cancelled at once; a running one stops at its next
    ``ctx.progress`` call (its message says so meanwhile). A finished job is left as it is."""
    who = getattr(user, "username", "") or "a user"
    now = timezone.now()
    if Job.objects.filter(pk=job.pk, status=Job.Status.QUEUED).update(
        status=Job.Status.CANCELLED,
        cancel_requested=True,
        finished_at=now,
        message=f"cancelled by {who}",
    ):
        changed = True
    else:
        changed = bool(
            Job.objects.filter(pk=job.pk, status=Job.Status.RUNNING).update(
                cancel_requested=True, message=f"cancel requested by {who}"
            )
        )
    if changed:
        record(
            request,
            "update",
            patient=job.patient,
            obj=job,
            detail=f"cancelled job {job.kind}",
            user=user,
        )
        if job.task_id:
            _revoke(job.task_id)
    job.refresh_from_db()
    return job


def _revoke(task_id: str) -> None:
    """Tell workers not to start the task (best effort: the row's cancel flag is what counts)."""
    from webapp.celery import app

    try:
        app.control.revoke(task_id)
    except Exception as exc:  # noqa: BLE001 - revoke is an optimisation only
        log.info("revoke of task %s failed: %s", task_id, one_line(exc))


def recover_stale_jobs(max_silence_s: float | None = None) -> list[tuple[int, str]]:
    """Settle ``running`` jobs whose heartbeat is older than ``max_silence_s`` (default
    ``ORTHOFUSE_JOB_STALE_AFTER_S``): their worker died. Each is re-queued when it has
    attempts left, else failed with the reason. Returns ``[(job_id, what happened), ...]``.

    Cheap when nothing is stale (one indexed query), so pages may call it."""
    limit = stale_after_s() if max_silence_s is None else float(max_silence_s)
    now = timezone.now()
    cutoff = now - timedelta(seconds=limit)
    stale = Job.objects.filter(status=Job.Status.RUNNING).filter(
        Q(heartbeat_at__lt=cutoff) | Q(heartbeat_at__isnull=True, created_at__lt=cutoff)
    )
    specs = all_specs()
    outcomes: list[tuple[int, str]] = []
    for job in stale:
        last = job.heartbeat_at or job.started_at
        silence = (
            f"last heartbeat {human_seconds((now - last).total_seconds())} ago"
            if last
            else "no heartbeat"
        )
        mine = Job.objects.filter(
            pk=job.pk,
            status=Job.Status.RUNNING,
            attempts=job.attempts,
            heartbeat_at=job.heartbeat_at,
        )
        spec = specs.get(job.kind)
        plural = "s" if job.attempts != 1 else ""
        if job.cancel_requested:
            what = f"cancelled (worker stopped responding, {silence})"
            done = mine.update(status=Job.Status.CANCELLED, message="cancelled", finished_at=now)
        elif spec is None:
            what = f"failed: unknown job kind {job.kind!r}"
            done = mine.update(
                status=Job.Status.FAILED, message="", error=what[8:], finished_at=now
            )
        elif job.started_at and (now - job.started_at).total_seconds() > spec.time_limit:
            what = f"failed: time limit of {spec.time_limit} s exceeded (worker stopped, {silence})"
            done = mine.update(
                status=Job.Status.FAILED, message="", error=what[8:], finished_at=now
            )
        elif job.attempts < spec.max_attempts:
            task_id = str(uuid.uuid4())
            what = f"re-queued: worker stopped responding ({silence})"
            done = mine.update(
                status=Job.Status.QUEUED, message=what, task_id=task_id, sent_at=now
            )
            if done:
                transaction.on_commit(
                    lambda pk=job.pk, spec=spec, task_id=task_id: _send(pk, spec, task_id)
                )
        else:
            what = f"failed: worker stopped responding ({silence}) after {job.attempts} attempt{plural}"
            done = mine.update(
                status=Job.Status.FAILED, message="", error=what[8:], finished_at=now
            )
        if done:
            log.warning("job %s (%s) %s", job.pk, job.kind, what)
            outcomes.append((job.pk, what))
    return outcomes
