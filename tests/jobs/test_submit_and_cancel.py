"""submit_job and cancel_job: rows, audit events, messages sent after commit, clear refusals."""

from __future__ import annotations

from unittest import mock

import pytest

from webapp.core.models import AuditEvent
from webapp.jobs.models import Job
from webapp.jobs.registry import JobError
from webapp.jobs.services import cancel_job, submit_job
from webapp.jobs.tasks import run_job


def test_submit_creates_row_audits_and_sends_after_commit(
    surgeon_a, patient_a, django_capture_on_commit_callbacks
):
    with mock.patch.object(run_job, "apply_async") as send:
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            job = submit_job(
                "diagnostic_sleep", params={"seconds": 1}, user=surgeon_a, patient=patient_a
            )
        send.assert_not_called()  # nothing leaves before the transaction commits
        for callback in callbacks:
            callback()
    job.refresh_from_db()
    assert job.status == Job.Status.QUEUED
    assert job.queue == "cpu"
    assert job.created_by == surgeon_a
    assert job.patient == patient_a
    assert job.params == {"seconds": 1}
    send.assert_called_once()
    kwargs = send.call_args.kwargs
    assert kwargs["args"] == [job.pk]
    assert kwargs["queue"] == "cpu"
    assert kwargs["task_id"] == job.task_id
    assert kwargs["soft_time_limit"] == 660
    assert kwargs["time_limit"] == 720
    event = AuditEvent.objects.get(action="job_start")
    assert event.user == surgeon_a
    assert event.patient_id_ref == patient_a.pk
    assert event.object_type == "Job"
    assert event.object_id == str(job.pk)


def test_gpu_kind_goes_to_the_gpu_queue(surgeon_a, django_capture_on_commit_callbacks):
    with mock.patch.object(run_job, "apply_async") as send:
        with django_capture_on_commit_callbacks(execute=True):
            job = submit_job("diagnostic_gpu", user=surgeon_a)
    assert job.queue == "gpu"
    assert send.call_args.kwargs["queue"] == "gpu"


def test_unknown_kind_is_refused_and_nothing_stored(surgeon_a):
    with pytest.raises(JobError, match="unknown job kind 'nope'"):
        submit_job("nope", user=surgeon_a)
    assert not Job.objects.exists()
    assert not AuditEvent.objects.filter(action="job_start").exists()


def test_parameters_must_be_json(surgeon_a):
    with pytest.raises(JobError, match="job parameters must be JSON"):
        submit_job("diagnostic_sleep", params={"when": object()}, user=surgeon_a)
    assert not Job.objects.exists()


def test_unreachable_broker_fails_the_job_with_a_reason(
    surgeon_a, django_capture_on_commit_callbacks
):
    with mock.patch.object(
        run_job, "apply_async", side_effect=ConnectionRefusedError(111, "refused")
    ):
        with django_capture_on_commit_callbacks(execute=True):
            job = submit_job("diagnostic_sleep", user=surgeon_a)
    job.refresh_from_db()
    assert job.status == Job.Status.FAILED
    assert job.error.startswith("could not reach the job queue: ConnectionRefusedError")


def test_cancel_queued_job_is_immediate(make_job, surgeon_a):
    job = make_job(created_by=surgeon_a, task_id="abc")
    with mock.patch("webapp.jobs.services._revoke") as revoke:
        job = cancel_job(job, surgeon_a)
    assert job.status == Job.Status.CANCELLED
    assert job.cancel_requested
    assert job.finished_at is not None
    assert job.message == "cancelled by surgeon_a"
    revoke.assert_called_once_with("abc")
    assert AuditEvent.objects.filter(action="update", object_id=str(job.pk)).exists()


def test_cancel_running_job_sets_the_flag_only(make_job, surgeon_a):
    job = make_job(status=Job.Status.RUNNING, attempts=1)
    with mock.patch("webapp.jobs.services._revoke"):
        job = cancel_job(job, surgeon_a)
    assert job.status == Job.Status.RUNNING
    assert job.cancel_requested
    assert job.message == "cancel requested by surgeon_a"


def test_cancel_finished_job_changes_nothing(make_job, surgeon_a):
    job = make_job(status=Job.Status.SUCCEEDED, result={"ok": True})
    with mock.patch("webapp.jobs.services._revoke") as revoke:
        job = cancel_job(job, surgeon_a)
    assert job.status == Job.Status.SUCCEEDED
    assert not job.cancel_requested
    revoke.assert_not_called()
    assert not AuditEvent.objects.filter(action="update").exists()
