"""What a run of a job leaves on its row: success, clear failures, time limits, idempotency."""

from __future__ import annotations

import math
from datetime import timedelta

import pytest
from celery.exceptions import SoftTimeLimitExceeded
from django.db import OperationalError
from django.utils import timezone

from webapp.jobs.models import Job
from webapp.jobs.registry import JobError
from webapp.jobs.runner import execute_job


def test_success_records_progress_result_and_stage_timings(make_job):
    job = make_job(params={"seconds": 0.1, "steps": 5})
    assert execute_job(job.pk, worker="test") == "succeeded"
    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED
    assert job.progress == pytest.approx(1.0)
    assert job.message == "step 5 of 5"
    assert job.attempts == 1
    assert job.error == ""
    assert job.result["steps"] == 5
    assert 0.1 <= job.result["slept_s"] < 5.0
    assert set(job.timings) == {"sleep"}
    assert 0.1 <= job.timings["sleep"] <= job.result["slept_s"] + 0.01
    assert job.started_at <= job.finished_at
    assert job.duration_s == pytest.approx((job.finished_at - job.started_at).total_seconds())


def test_job_error_fails_with_its_own_message(make_job):
    job = make_job(params={"seconds": 0.01, "steps": 4, "fail": True})
    assert execute_job(job.pk) == "failed"
    job.refresh_from_db()
    assert job.status == Job.Status.FAILED
    assert job.error == "diagnostic failure requested (failed at step 2 of 4)"
    assert job.message == "step 1 of 4"  # where it got to
    assert job.progress == pytest.approx(0.25)  # step 1 was reported before the failure
    assert "sleep" in job.timings  # the stage that failed is still timed


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"seconds": "x"}, "parameter 'seconds' must be a number from 0 to 600 (got 'x')"),
        ({"seconds": 1, "steps": 0}, "parameter 'steps' must be a number from 1 to 1000 (got 0)"),
        ({"seconds": 0, "fail": "yes"}, "parameter 'fail' must be true or false (got 'yes')"),
    ],
)
def test_bad_parameters_fail_with_a_message_naming_them(make_job, params, message):
    job = make_job(params=params)
    assert execute_job(job.pk) == "failed"
    job.refresh_from_db()
    assert job.error_line == message


def test_unexpected_exception_is_an_internal_error_with_one_ui_line(make_job, temp_kind):
    def boom(job, ctx):
        ctx.progress(0.5, "half way")
        raise ValueError("bad value\nsecond line")

    job = make_job(kind=temp_kind("test_boom", boom))
    assert execute_job(job.pk) == "failed"
    job.refresh_from_db()
    assert job.error_line == "internal error: ValueError: bad value second line"
    assert "Traceback (most recent call last)" in job.error  # kept for the logs / admin
    assert job.progress == pytest.approx(0.5)


def test_soft_time_limit_fails_with_the_limit(make_job, temp_kind):
    def slow(job, ctx):
        raise SoftTimeLimitExceeded()

    job = make_job(kind=temp_kind("test_slow", slow, soft_time_limit=7))
    assert execute_job(job.pk) == "failed"
    job.refresh_from_db()
    assert job.status == Job.Status.FAILED
    assert job.error == "time limit of 7 s exceeded"


def test_soft_time_limit_after_cancel_request_counts_as_cancelled(make_job, temp_kind):
    def slow(job, ctx):
        Job.objects.filter(pk=job.pk).update(cancel_requested=True)
        raise SoftTimeLimitExceeded()

    job = make_job(kind=temp_kind("test_slow_cancel", slow))
    assert execute_job(job.pk) == "cancelled"
    assert Job.objects.get(pk=job.pk).status == Job.Status.CANCELLED


@pytest.mark.parametrize("value", [{"array": object()}, {"loss": math.nan}])
def test_result_that_is_not_json_fails_clearly(make_job, temp_kind, value):
    job = make_job(kind=temp_kind("test_not_json", lambda job, ctx: value))
    assert execute_job(job.pk) == "failed"
    job.refresh_from_db()
    assert job.error_line.startswith("internal error: TypeError: the job's result is not JSON")
    assert job.result == {}


def test_unknown_kind_fails_without_running(make_job):
    job = make_job(kind="no_such_kind")
    assert execute_job(job.pk) == "skipped"
    job.refresh_from_db()
    assert job.status == Job.Status.FAILED
    assert job.error == "unknown job kind 'no_such_kind'"


def test_missing_job_is_skipped(db):
    assert execute_job(987654) == "skipped"


@pytest.mark.parametrize("status", [Job.Status.SUCCEEDED, Job.Status.CANCELLED, Job.Status.FAILED])
def test_finished_job_is_not_run_again(make_job, temp_kind, status):
    calls: list[int] = []

    def count(job, ctx):
        calls.append(job.pk)
        return {"n": len(calls)}

    job = make_job(kind=temp_kind("test_count", count), status=status, result={"n": 0}, attempts=1)
    assert execute_job(job.pk) == "skipped"
    assert calls == []
    job.refresh_from_db()
    assert job.status == status
    assert job.result == {"n": 0}
    assert job.attempts == 1


def test_queued_job_cancelled_before_start_never_runs(make_job, temp_kind):
    calls: list[int] = []
    job = make_job(
        kind=temp_kind("test_never", lambda job, ctx: calls.append(1) or {}), cancel_requested=True
    )
    assert execute_job(job.pk) == "skipped"
    assert calls == []
    assert Job.objects.get(pk=job.pk).status == Job.Status.CANCELLED


def test_cancel_request_stops_a_running_handler_at_its_next_progress(make_job, temp_kind, settings):
    settings.ORTHOFUSE_JOB_PROGRESS_MIN_INTERVAL_S = 0.0
    reached: list[float] = []

    def loop(job, ctx):
        for step in range(10):
            if step == 3:
                Job.objects.filter(pk=job.pk).update(cancel_requested=True)
            ctx.progress(step / 10, f"step {step}")
            reached.append(step)
        return {}

    job = make_job(kind=temp_kind("test_loop", loop))
    assert execute_job(job.pk) == "cancelled"
    assert reached == [0, 1, 2]
    job.refresh_from_db()
    assert job.status == Job.Status.CANCELLED
    assert job.progress == pytest.approx(0.2)  # the write that saw the cancel is not stored


def test_redelivered_job_whose_worker_died_is_run_again(make_job, settings):
    settings.ORTHOFUSE_JOB_STALE_AFTER_S = 60
    long_ago = timezone.now() - timedelta(minutes=10)
    job = make_job(
        status=Job.Status.RUNNING,
        attempts=1,
        started_at=long_ago,
        heartbeat_at=long_ago,
        worker="old@host host=elsewhere pid=1",
        progress=0.4,
    )
    assert execute_job(job.pk, worker="new") == "succeeded"
    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED
    assert job.attempts == 2
    assert job.worker == "new"


def test_redelivered_job_whose_process_is_gone_is_run_again_at_once(make_job):
    """Fresh heartbeat, but the process that ran it on this machine no longer exists."""
    import socket
    import subprocess
    import sys

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    now = timezone.now()
    job = make_job(
        status=Job.Status.RUNNING,
        attempts=1,
        started_at=now,
        heartbeat_at=now,
        worker=f"old host={socket.gethostname()} pid={dead.pid}",
    )
    assert execute_job(job.pk) == "succeeded"
    assert Job.objects.get(pk=job.pk).attempts == 2


def test_redelivered_job_out_of_attempts_fails_with_reason(make_job):
    long_ago = timezone.now() - timedelta(minutes=10)
    job = make_job(
        status=Job.Status.RUNNING, attempts=2, started_at=long_ago, heartbeat_at=long_ago
    )
    assert execute_job(job.pk) == "skipped"
    job.refresh_from_db()
    assert job.status == Job.Status.FAILED
    assert job.error == "worker stopped responding (last heartbeat 10 min ago) after 2 attempts"


def test_transient_database_error_is_retried_without_using_an_attempt(make_job, temp_kind):
    from webapp.jobs.tasks import run_job

    calls: list[int] = []

    def flaky(job, ctx):
        calls.append(job.attempts)
        if len(calls) < 3:
            raise OperationalError("server closed the connection unexpectedly")
        return {"calls": len(calls)}

    job = make_job(kind=temp_kind("test_flaky", flaky, max_attempts=1))
    run_job.apply(args=[job.pk])  # eager: retries run at once
    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED, job.error
    assert job.result == {"calls": 3}
    assert calls == [1, 1, 1]  # each retry is still the first attempt
    assert job.attempts == 1


def test_persistent_transient_error_gives_up_with_reason(make_job, temp_kind):
    from webapp.jobs.tasks import MAX_TRANSIENT_RETRIES, run_job

    calls: list[int] = []

    def down(job, ctx):
        calls.append(1)
        raise OperationalError("could not connect to server")

    job = make_job(kind=temp_kind("test_down", down))
    run_job.apply(args=[job.pk])
    job.refresh_from_db()
    assert len(calls) == MAX_TRANSIENT_RETRIES + 1
    assert job.status == Job.Status.FAILED
    assert job.error == (
        f"gave up after {MAX_TRANSIENT_RETRIES} retries of a transient error: "
        "OperationalError: could not connect to server"
    )


def test_progress_rejects_non_finite_values(make_job, temp_kind):
    def bad(job, ctx):
        ctx.progress(float("nan"))

    job = make_job(kind=temp_kind("test_nan_progress", bad))
    execute_job(job.pk)
    job.refresh_from_db()
    assert job.error_line == "internal error: ValueError: progress must be a finite number, got nan"


def test_handler_error_class_is_public():
    assert issubclass(JobError, Exception)
