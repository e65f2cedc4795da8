"""Queued jobs whose broker message was lost are sent again (webapp.jobs.resend); a queue that
is busy with a running job, or a message sent recently, is left alone; duplicates are skipped.
(In tests/core because tests/jobs belongs to another engineer; it may move there.)"""

from __future__ import annotations

from datetime import timedelta
from io import StringIO
from unittest import mock

import pytest
from django.core.management import call_command
from django.utils import timezone

from webapp.jobs.models import Job
from webapp.jobs.resend import resend_lost_jobs
from webapp.jobs.runner import execute_job
from webapp.jobs.tasks import run_job

PARAMS = {"seconds": 0.02, "steps": 2}


def _queued(sent_s_ago: float, kind: str = "diagnostic_sleep", queue: str = "cpu") -> Job:
    return Job.objects.create(
        kind=kind, queue=queue, params=PARAMS, task_id="old-task",
        sent_at=timezone.now() - timedelta(seconds=sent_s_ago),
    )  # fmt: skip


def _running(queue: str, beat_s_ago: float) -> Job:
    beat = timezone.now() - timedelta(seconds=beat_s_ago)
    return Job.objects.create(
        kind="diagnostic_sleep", queue=queue, params=PARAMS, status=Job.Status.RUNNING,
        attempts=1, started_at=beat, heartbeat_at=beat,
    )  # fmt: skip


@pytest.fixture
def sent():
    with mock.patch.object(run_job, "apply_async") as send:
        yield send


@pytest.fixture
def resend(django_capture_on_commit_callbacks):
    """resend_lost_jobs with its after-commit sends run at once."""

    def run(**kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return resend_lost_jobs(**kwargs)

    return run


@pytest.mark.django_db
def test_lost_message_is_sent_again_and_the_job_runs_once(sent, resend):
    job = _queued(sent_s_ago=600)
    outcomes = resend(after_s=300)
    assert outcomes == [(job.pk, "re-sent: no worker took it in 10 min")]
    job.refresh_from_db()
    assert job.task_id != "old-task" and job.status == Job.Status.QUEUED
    assert timezone.now() - job.sent_at < timedelta(seconds=30)
    sent.assert_called_once()
    assert sent.call_args.kwargs["task_id"] == job.task_id
    assert sent.call_args.kwargs["args"] == [job.pk] and sent.call_args.kwargs["queue"] == "cpu"
    assert resend(after_s=300) == []  # sent just now: not again
    assert execute_job(job.pk) == "succeeded"  # the new message
    assert execute_job(job.pk) == "skipped"  # the lost one, should it turn up after all


@pytest.mark.django_db
def test_recent_busy_cancelled_or_running_jobs_are_left_alone(sent, resend):
    recent = _queued(sent_s_ago=60)
    behind_busy = _queued(sent_s_ago=900, queue="gpu")
    _running("gpu", beat_s_ago=5)  # the gpu queue's worker is busy and alive
    cancelled = _queued(sent_s_ago=900)
    Job.objects.filter(pk=cancelled.pk).update(cancel_requested=True)
    lost = _queued(sent_s_ago=900)
    assert [pk for pk, _ in resend(after_s=300)] == [lost.pk]
    for job in (recent, behind_busy, cancelled):
        job.refresh_from_db()
        assert job.task_id == "old-task", job


@pytest.mark.django_db
def test_a_dead_workers_running_job_does_not_hold_the_queue(sent, resend, settings):
    settings.ORTHOFUSE_JOB_STALE_AFTER_S = 120
    _running("cpu", beat_s_ago=600)  # silent: recover_stale_jobs settles it
    lost = _queued(sent_s_ago=900)
    assert [pk for pk, _ in resend(after_s=300)] == [lost.pk]


@pytest.mark.django_db
def test_default_wait_comes_from_settings_and_recover_jobs_resends(
    sent, settings, django_capture_on_commit_callbacks
):
    settings.ORTHOFUSE_JOB_HEARTBEAT_S = 1
    settings.ORTHOFUSE_JOB_STALE_AFTER_S = 60
    settings.ORTHOFUSE_JOB_RESEND_AFTER_S = 200
    early = _queued(sent_s_ago=150)
    lost = _queued(sent_s_ago=250)
    out = StringIO()
    with django_capture_on_commit_callbacks(execute=True):
        call_command("recover_jobs", stdout=out)
    sent.assert_called_once()
    assert f"job {lost.pk}: re-sent: no worker took it in 4 min" in out.getvalue()
    assert "1 lost job message re-sent" in out.getvalue()
    assert Job.objects.get(pk=early.pk).task_id == "old-task"


def test_broker_visibility_timeout_exceeds_every_job_time_limit(settings):
    """A redelivering broker (Redis) must not hand a still-running job to a second worker."""
    from webapp.jobs.registry import all_specs

    longest = max(spec.time_limit for spec in all_specs().values())
    assert longest >= 11 * 3600  # training is registered (the test would be vacuous otherwise)
    assert settings.ORTHOFUSE_BROKER_VISIBILITY_TIMEOUT_S > longest
