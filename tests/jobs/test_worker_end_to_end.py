"""A real Celery worker runs jobs end to end through the configured broker."""

from __future__ import annotations

import time

import pytest
from django.urls import reverse

from tests.jobs.conftest import wait_for
from webapp.jobs.models import Job
from webapp.jobs.services import cancel_job, submit_job

pytestmark = [pytest.mark.worker, pytest.mark.timeout(90)]


def _status(client, job: Job) -> dict:
    response = client.get(reverse("jobs:job-status", args=[job.pk]))
    assert response.status_code == 200
    return response.json()


def test_worker_runs_job_and_reports_intermediate_progress(
    celery_worker, client, surgeon_a, patient_a
):
    client.force_login(surgeon_a)
    job = submit_job(
        "diagnostic_sleep", params={"seconds": 2.0, "steps": 8}, user=surgeon_a, patient=patient_a
    )
    seen: list[tuple[str, float, str]] = []

    def finished() -> bool:
        data = _status(client, job)
        seen.append((data["status"], data["progress"], data["message"]))
        return data["is_finished"]

    wait_for(finished, timeout=60, interval=0.05, what="the diagnostic job to finish")
    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED, job.error
    assert job.progress == pytest.approx(1.0)
    assert job.attempts == 1
    intermediate = [p for status, p, _ in seen if status == Job.Status.RUNNING and 0.0 < p < 1.0]
    assert intermediate, f"no intermediate progress observed in {seen}"
    assert any(message.startswith("step ") for _, _, message in seen)
    # progress never goes backwards while the job runs
    running = [p for status, p, _ in seen if status == Job.Status.RUNNING]
    assert running == sorted(running)
    assert job.result["steps"] == 8
    assert 2.0 <= job.result["slept_s"] < 10.0  # 8 sleeps of 0.25 s plus database writes
    assert 2.0 <= job.timings["sleep"] < 10.0
    assert job.live == {"step": 8}
    assert job.started_at and job.finished_at and job.finished_at >= job.started_at
    assert job.worker and "pid=" in job.worker


def test_running_job_stops_when_cancelled(celery_worker, surgeon_a):
    job = submit_job("diagnostic_sleep", params={"seconds": 30.0, "steps": 60}, user=surgeon_a)
    wait_for(
        lambda: Job.objects.filter(pk=job.pk, status=Job.Status.RUNNING, progress__gt=0).exists(),
        timeout=60,
        what="the job to start",
    )
    asked = time.monotonic()
    job = cancel_job(job, surgeon_a)
    assert job.cancel_requested
    wait_for(
        lambda: Job.objects.get(pk=job.pk).is_finished,
        timeout=30,
        what="the job to stop after cancel",
    )
    job.refresh_from_db()
    assert job.status == Job.Status.CANCELLED
    assert time.monotonic() - asked < 10, "a cancelled job should stop at its next progress step"
    assert 0.0 < job.progress < 1.0


def test_failing_job_reports_its_reason_through_the_worker(celery_worker, surgeon_a):
    job = submit_job(
        "diagnostic_sleep", params={"seconds": 0.4, "steps": 4, "fail": True}, user=surgeon_a
    )
    wait_for(lambda: Job.objects.get(pk=job.pk).is_finished, timeout=60, what="the job to fail")
    job.refresh_from_db()
    assert job.status == Job.Status.FAILED
    assert job.error_line == "diagnostic failure requested (failed at step 2 of 4)"
    assert job.attempts == 1
