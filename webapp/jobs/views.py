"""Job pages (list, detail, cancel, diagnostic start) and the JSON status endpoints the
progress bars poll. Every lookup goes through :func:`webapp.jobs.services.visible_jobs`:
another team's job answers 404."""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from webapp.core.audit import record
from webapp.core.reauth import recent_auth_required
from webapp.jobs.conf import resend_after_s
from webapp.jobs.models import Job
from webapp.jobs.registry import JobError
from webapp.jobs.services import cancel_job, recover_stale_jobs, submit_job, visible_jobs

log = logging.getLogger(__name__)

MAX_STATUS_IDS = 200


def job_payload(job: Job, *, full: bool = False) -> dict[str, Any]:
    """The JSON the progress bars read (``full`` adds timings and result)."""
    data: dict[str, Any] = {
        "id": job.pk,
        "kind": job.kind,
        "label": job.label,
        "status": job.status,
        "status_display": job.get_status_display(),
        "progress": round(job.progress, 4),
        "message": job.message,
        "error": job.error_line,
        "is_finished": job.is_finished,
        "cancel_requested": job.cancel_requested,
        "attempts": job.attempts,
        "created_at": job.created_at.isoformat() if job.created_at else None,
        "started_at": job.started_at.isoformat() if job.started_at else None,
        "finished_at": job.finished_at.isoformat() if job.finished_at else None,
        "live": job.live,
        "url": reverse("jobs:job-detail", args=[job.pk]),
        "status_url": reverse("jobs:job-status", args=[job.pk]),
    }
    if full:
        data["timings"] = job.timings
        data["result"] = job.result if job.status == Job.Status.SUCCEEDED else None
        data["duration_s"] = job.duration_s
    return data


def _visible_job_or_404(request: HttpRequest, pk: int) -> Job:
    job = visible_jobs(request.user).select_related("patient", "created_by").filter(pk=pk).first()
    if job is None:
        raise Http404("job not found")
    return job


@login_required
@require_GET
def job_list(request: HttpRequest) -> HttpResponse:
    try:
        recover_stale_jobs()
    except Exception:  # noqa: BLE001 - the list must show even if recovery hiccups
        log.exception("recover_stale_jobs from the job list failed")
    jobs = visible_jobs(request.user).select_related("patient", "created_by")
    status = request.GET.get("status", "")
    if status in Job.Status.values:
        jobs = jobs.filter(status=status)
    else:
        status = ""
    page = Paginator(jobs, 50).get_page(request.GET.get("page"))
    shown = sorted({job.patient.mrn for job in page.object_list if job.patient_id})
    record(request, "view", detail=f"job list: patients {', '.join(shown) or 'none'}")
    late_before = timezone.now() - timedelta(seconds=resend_after_s())
    for job in page.object_list:  # still waiting for a worker since long before a resend
        job.queued_too_long = job.status == Job.Status.QUEUED and job.created_at < late_before
    return render(
        request,
        "jobs/job_list.html",
        {"page": page, "jobs": page.object_list, "status": status, "statuses": Job.Status.choices},
    )


@login_required
@require_GET
def job_detail(request: HttpRequest, pk: int) -> HttpResponse:
    job = _visible_job_or_404(request, pk)
    if job.patient_id:
        record(request, "view", patient=job.patient, obj=job, detail=f"job {job.kind}")
    timings = sorted((job.timings or {}).items(), key=lambda item: -float(item[1] or 0))
    context = {
        "job": job,
        "timings": timings,
        "params_json": json.dumps(job.params, indent=2, sort_keys=True),
        "result_json": json.dumps(job.result, indent=2, sort_keys=True),
    }
    return render(request, "jobs/job_detail.html", context)


@login_required
@require_GET
def job_status(request: HttpRequest, pk: int) -> JsonResponse:
    return JsonResponse(job_payload(_visible_job_or_404(request, pk), full=True))


@login_required
@require_GET
def job_status_list(request: HttpRequest) -> JsonResponse:
    """``?ids=1,2,3``: those jobs (invisible ones are simply absent); without ids the 50 newest."""
    jobs = visible_jobs(request.user)
    raw = request.GET.get("ids", "").strip()
    if raw:
        try:
            ids = [int(part) for part in raw.split(",") if part.strip()]
        except ValueError:
            return JsonResponse({"detail": "ids must be comma-separated job numbers"}, status=400)
        if len(ids) > MAX_STATUS_IDS:
            return JsonResponse({"detail": f"at most {MAX_STATUS_IDS} ids per request"}, status=400)
        jobs = jobs.filter(pk__in=ids)
    else:
        jobs = jobs[:50]
    return JsonResponse({"jobs": [job_payload(job) for job in jobs]})


def _back(request: HttpRequest, job: Job) -> HttpResponse:
    target = request.POST.get("next", "")
    if target and url_has_allowed_host_and_scheme(
        target, {request.get_host()}, request.is_secure()
    ):
        return redirect(target)
    return redirect("jobs:job-detail", pk=job.pk)


@login_required
@require_POST
@recent_auth_required
def job_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    job = _visible_job_or_404(request, pk)
    if job.is_finished:
        messages.warning(
            request, f"Job #{job.pk} had already finished ({job.get_status_display().lower()})."
        )
        return _back(request, job)
    job = cancel_job(job, request.user, request=request)
    if job.status == Job.Status.CANCELLED:
        messages.success(request, f"Job #{job.pk} was cancelled.")
    else:
        messages.success(request, f"Job #{job.pk} will stop at its next progress step.")
    return _back(request, job)


@login_required
@require_POST
def job_diagnostic(request: HttpRequest) -> HttpResponse:
    """Staff only: start a diagnostic job to check that workers of a queue answer."""
    if not request.user.is_staff:
        raise Http404("not found")
    kind = "diagnostic_gpu" if request.POST.get("queue") == "gpu" else "diagnostic_sleep"
    try:
        job = submit_job(
            kind, params={"seconds": 5, "steps": 10}, user=request.user, request=request
        )
    except JobError as exc:
        messages.error(request, str(exc))
        return redirect("jobs:job-list")
    messages.success(request, f"Started diagnostic job #{job.pk} on the {job.queue} queue.")
    return redirect("jobs:job-detail", pk=job.pk)
