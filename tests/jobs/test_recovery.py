"""recover_stale_jobs: running jobs whose worker went silent are re-queued or failed, never left
running; live jobs are left alone."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from io import StringIO
from unittest import mock

import pytest
from django.core.management import CommandError, call_command
from django.db import connections
from django.urls import reverse
from django.utils import timezone

from webapp.jobs.models import Job
from webapp.jobs.runner import execute_job
from webapp.jobs.services import recover_stale_jobs
from webapp.jobs.tasks import _recover_quietly, recover_on_worker_start, run_job


def _running(
    make_job, *, silent_s: float, attempts: int = 1, kind: str = "diagnostic_sleep", **extra
):
    beat = timezone.now() - timedelta(seconds=silent_s)
    extra.setdefault("started_at", beat)
    return make_job(
        kind=kind, status=Job.Status.RUNNING, attempts=attempts, heartbeat_at=beat, **extra
    )


def test_silent_job_with_attempts_left_is_requeued(make_job, django_capture_on_commit_callbacks):
    job = _running(make_job, silent_s=300)
    with mock.patch.object(run_job, "apply_async") as send:
        with django_capture_on_commit_callbacks(execute=True):
            outcomes = recover_stale_jobs(max_silence_s=120)
    assert outcomes == [(job.pk, "re-queued: worker stopped responding (last heartbeat 5 min ago)")]
    job.refresh_from_db()
    assert job.status == Job.Status.QUEUED
    assert job.attempts == 1
    send.assert_called_once()
    assert send.call_args.kwargs["args"] == [job.pk]
    assert send.call_args.kwargs["task_id"] == job.task_id
    # the re-sent message then runs it as the second attempt
    assert execute_job(job.pk) == "succeeded"
    job.refresh_from_db()
    assert (job.status, job.attempts) == (Job.Status.SUCCEEDED, 2)


def test_silent_job_out_of_attempts_fails_with_reason(make_job):
    job = _running(make_job, silent_s=45, attempts=2)
    outcomes = recover_stale_jobs(max_silence_s=30)
    assert len(outcomes) == 1
    job.refresh_from_db()
    assert job.status == Job.Status.FAILED
    assert job.error == "worker stopped responding (last heartbeat 45 s ago) after 2 attempts"
    assert job.finished_at is not None


def test_live_and_finished_jobs_are_left_alone(make_job):
    live = _running(make_job, silent_s=5)
    done = make_job(status=Job.Status.SUCCEEDED, heartbeat_at=timezone.now() - timedelta(hours=2))
    queued = make_job()
    assert recover_stale_jobs(max_silence_s=30) == []
    for job, status in (
        (live, Job.Status.RUNNING),
        (done, Job.Status.SUCCEEDED),
        (queued, Job.Status.QUEUED),
    ):
        job.refresh_from_db()
        assert job.status == status


def test_silent_job_past_its_hard_time_limit_fails(make_job):
    # diagnostic_sleep: soft 660 s, hard 720 s
    job = _running(make_job, silent_s=200, started_at=timezone.now() - timedelta(seconds=800))
    recover_stale_jobs(max_silence_s=60)
    job.refresh_from_db()
    assert job.status == Job.Status.FAILED
    assert job.error_line.startswith(
        "time limit of 720 s exceeded (worker stopped, last heartbeat "
    )


def test_silent_job_with_cancel_request_becomes_cancelled(make_job):
    job = _running(make_job, silent_s=300, cancel_requested=True)
    recover_stale_jobs(max_silence_s=60)
    assert Job.objects.get(pk=job.pk).status == Job.Status.CANCELLED


def test_silent_job_of_unknown_kind_fails(make_job):
    job = _running(make_job, silent_s=300, kind="retired_kind")
    recover_stale_jobs(max_silence_s=60)
    job.refresh_from_db()
    assert job.status == Job.Status.FAILED
    assert job.error == "unknown job kind 'retired_kind'"


def test_default_limit_comes_from_settings(make_job, settings):
    settings.ORTHOFUSE_JOB_HEARTBEAT_S = 1
    settings.ORTHOFUSE_JOB_STALE_AFTER_S = 50
    job = _running(make_job, silent_s=60, attempts=2)
    fresh = _running(make_job, silent_s=40, attempts=2)
    assert [pk for pk, _ in recover_stale_jobs()] == [job.pk]
    assert Job.objects.get(pk=fresh.pk).status == Job.Status.RUNNING


def test_recover_jobs_command(make_job):
    job = _running(make_job, silent_s=600, attempts=2)
    out = StringIO()
    call_command("recover_jobs", "--max-silence", "60", stdout=out)
    assert (
        f"job {job.pk}: failed: worker stopped responding (last heartbeat 10 min ago)"
        in out.getvalue()
    )
    assert "1 stale job settled" in out.getvalue()
    assert Job.objects.get(pk=job.pk).status == Job.Status.FAILED


def test_recover_jobs_command_refuses_bad_limit(db):
    with pytest.raises(CommandError, match="--max-silence must be a positive number"):
        call_command("recover_jobs", "--max-silence", "0")


def test_worker_start_runs_recovery_and_schedules_it(make_job, settings):
    settings.ORTHOFUSE_JOB_HEARTBEAT_S = 1
    settings.ORTHOFUSE_JOB_STALE_AFTER_S = 60
    job = _running(make_job, silent_s=600, attempts=2)
    consumer = mock.Mock()
    with mock.patch("webapp.jobs.tasks.connections") as conns:  # keep the test's connection open
        recover_on_worker_start(sender=consumer)
    conns.close_all.assert_called_once()
    assert Job.objects.get(pk=job.pk).status == Job.Status.FAILED
    consumer.timer.call_repeatedly.assert_called_once_with(30.0, _recover_quietly)


def test_job_list_page_runs_recovery(client, make_job, make_user, settings):
    settings.ORTHOFUSE_JOB_STALE_AFTER_S = 60
    admin = make_user("root", superuser=True)
    job = _running(make_job, silent_s=600, attempts=2, created_by=admin)
    client.force_login(admin)
    with mock.patch("webapp.jobs.views.recover_stale_jobs", wraps=recover_stale_jobs) as spy:
        response = client.get(reverse("jobs:job-list"))
    assert response.status_code == 200
    spy.assert_called_once()
    assert Job.objects.get(pk=job.pk).status == Job.Status.FAILED


def test_duplicate_delivery_of_a_live_job_is_skipped(
    transactional_db, make_job, temp_kind, settings
):
    """A second message for a job whose worker is still beating must not start a second run."""
    settings.ORTHOFUSE_JOB_HEARTBEAT_S = 0.1
    calls: list[int] = []
    job = _running(
        make_job,
        silent_s=0,
        kind=temp_kind("test_dup", lambda job, ctx: calls.append(1) or {}),
        worker="other@elsewhere host=elsewhere pid=1",
    )
    stop = threading.Event()

    def beat() -> None:
        try:
            while not stop.wait(0.05):
                Job.objects.filter(pk=job.pk).update(heartbeat_at=timezone.now())
        finally:
            connections.close_all()

    beater = threading.Thread(target=beat)
    beater.start()
    try:
        started = time.monotonic()
        assert execute_job(job.pk) == "skipped"
        assert time.monotonic() - started < 5
    finally:
        stop.set()
        beater.join()
    assert calls == []
    job.refresh_from_db()
    assert (job.status, job.attempts) == (Job.Status.RUNNING, 1)


def test_duplicate_delivery_of_a_silent_job_takes_it_over(make_job, settings):
    """Heartbeat still recent but not moving: after a few intervals the run is declared dead."""
    settings.ORTHOFUSE_JOB_HEARTBEAT_S = 0.1
    job = _running(make_job, silent_s=0, worker="other@elsewhere host=elsewhere pid=1")
    assert execute_job(job.pk) == "succeeded"
    assert Job.objects.get(pk=job.pk).attempts == 2
