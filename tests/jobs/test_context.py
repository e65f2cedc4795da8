"""JobContext: throttled progress writes, stage timings, live data, fenced writes."""

from __future__ import annotations

import importlib.util
import sys

import pytest
from django.apps import apps

from webapp.jobs.context import JobContext, JobSuperseded
from webapp.jobs.models import Job
from webapp.jobs.registry import all_specs
from webapp.jobs.runner import execute_job


@pytest.fixture
def running(make_job):
    return make_job(status=Job.Status.RUNNING, attempts=1)


def test_progress_writes_are_throttled_but_never_lost(running):
    ctx = JobContext(running, attempt=1, min_interval_s=3600)
    ctx.progress(0.1, "first")  # first call always writes
    ctx.progress(0.2, "second")  # within the interval: kept in memory only
    stored = Job.objects.get(pk=running.pk)
    assert (stored.progress, stored.message) == (0.1, "first")
    ctx.flush()
    stored = Job.objects.get(pk=running.pk)
    assert (stored.progress, stored.message) == (0.2, "second")
    ctx.progress(1.0, "done")  # reaching 1.0 always writes
    assert Job.objects.get(pk=running.pk).progress == 1.0


def test_heartbeat_writes_progress_that_throttling_held_back(running):
    ctx = JobContext(running, attempt=1, min_interval_s=3600)
    ctx.progress(0.1, "loading")
    ctx.progress(0.4, "training (long silent step)")  # held back
    ctx.beat()  # the heartbeat thread's tick
    stored = Job.objects.get(pk=running.pk)
    assert (stored.progress, stored.message) == (0.4, "training (long silent step)")


def test_heartbeat_never_overwrites_a_newer_write(running):
    ctx = JobContext(running, attempt=1, min_interval_s=3600)
    ctx.progress(0.1, "one")
    ctx.progress(0.2, "two")  # held back
    # as if the handler's thread wrote newer values between the heartbeat's snapshot and
    # its write: the row no longer shows what the heartbeat expects
    Job.objects.filter(pk=running.pk).update(progress=0.3, message="three")
    ctx.beat()
    stored = Job.objects.get(pk=running.pk)
    assert (stored.progress, stored.message) == (0.3, "three")
    assert stored.heartbeat_at is not None


def test_progress_is_clamped_and_live_data_merges(running):
    ctx = JobContext(running, attempt=1, min_interval_s=0)
    ctx.progress(-0.5, data={"loss": [3.0]})
    ctx.progress(1.7, data={"lr": 0.01})
    stored = Job.objects.get(pk=running.pk)
    assert stored.progress == 1.0
    assert stored.live == {"loss": [3.0], "lr": 0.01}
    with pytest.raises(TypeError):
        ctx.progress(0.5, data={"bad": object()})


def test_stage_times_add_up_and_are_stored(running):
    ctx = JobContext(running, attempt=1)
    for _ in range(2):
        with ctx.stage("load"):
            pass
    with pytest.raises(RuntimeError):
        with ctx.stage("train"):
            raise RuntimeError("x")
    assert set(ctx.job.timings) == {"load", "train"}
    assert all(0.0 <= seconds < 1.0 for seconds in ctx.job.timings.values())
    assert set(Job.objects.get(pk=running.pk).timings) == {
        "load"
    }  # the failed stage is saved at finish


def test_a_superseded_run_cannot_overwrite_the_row(make_job, temp_kind):
    """If the job was given to another attempt meanwhile, the old run stops and writes nothing."""

    def handler(job, ctx):
        Job.objects.filter(pk=job.pk).update(attempts=job.attempts + 1, message="attempt 2 running")
        ctx.progress(0.5, "old run")
        return {"from": "old run"}

    job = make_job(kind=temp_kind("test_superseded", handler))
    assert execute_job(job.pk) == "superseded"
    job.refresh_from_db()
    assert (job.status, job.attempts, job.message, job.result) == (
        Job.Status.RUNNING,
        2,
        "attempt 2 running",
        {},
    )
    ctx = JobContext(job, attempt=1, min_interval_s=0)
    with pytest.raises(JobSuperseded):
        ctx.progress(0.9)


def test_handlers_of_every_app_are_loaded():
    assert {"diagnostic_sleep", "diagnostic_gpu"} <= set(all_specs())
    for config in apps.get_app_configs():
        module = f"{config.name}.jobs"
        if not config.name.startswith("django.") and importlib.util.find_spec(module):
            assert module in sys.modules, f"{module} was not imported by JobsConfig.ready"


def test_run_job_task_is_late_acknowledged_and_retries_transient_errors():
    from django.db import OperationalError

    from webapp.jobs.tasks import run_job

    assert run_job.name == "webapp.jobs.tasks.run_job"
    assert run_job.acks_late and run_job.reject_on_worker_lost
    assert OperationalError in run_job.autoretry_for
    assert 1 <= run_job.max_retries <= 5
