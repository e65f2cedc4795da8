"""A worker killed with SIGKILL mid-job: the job is re-run by a new worker, or failed with a
reason once its attempts are used up. Never left ``running``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from django.conf import settings

from tests.database_url import subprocess_database_url
from tests.jobs.conftest import wait_for
from webapp.jobs.models import Job
from webapp.jobs.services import recover_stale_jobs, submit_job

pytestmark = [pytest.mark.worker, pytest.mark.timeout(120)]

ROOT = Path(__file__).resolve().parents[2]


def _start_worker(queue: str, log_path: Path, *, stale_after_s: float = 600.0) -> subprocess.Popen:
    """``celery worker`` in a subprocess, on the test database and broker, in the current
    directory (see the ``broker_ready`` fixture) with ``ROOT`` importable."""
    env = dict(
        os.environ,
        DATABASE_URL=subprocess_database_url(),
        CELERY_BROKER_URL=settings.CELERY_BROKER_URL,
        # the broker_ready fixture may have pointed this at the session's own broker folders
        ORTHOFUSE_VAR_DIR=os.environ.get("ORTHOFUSE_VAR_DIR", str(settings.VAR_DIR)),
        ORTHOFUSE_JOB_HEARTBEAT_S="0.2",
        ORTHOFUSE_JOB_STALE_AFTER_S=str(stale_after_s),
        PYTHONUNBUFFERED="1",
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    )
    command = [
        sys.executable, "-m", "celery", "-A", "webapp", "worker",
        "-Q", queue, "-c", "1", "--pool=prefork", "--loglevel=INFO",
        "-n", f"killtest-{uuid.uuid4().hex[:8]}@%h",
        "--without-gossip", "--without-mingle", "--without-heartbeat",
    ]  # fmt: skip
    log = log_path.open("wb")
    try:
        # its own session: SIGKILL to the group takes the pool children down with it,
        # like a machine or container that dies
        return subprocess.Popen(
            command,
            cwd=os.getcwd(),
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    finally:
        log.close()


def _kill(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=10)


def _run_until_killed(job: Job, queue: str, tmp_path: Path) -> Job:
    log_path = tmp_path / "worker.log"
    proc = _start_worker(queue, log_path)
    try:
        wait_for(
            lambda: (
                proc.poll() is not None
                or Job.objects.filter(pk=job.pk, status=Job.Status.RUNNING, progress__gt=0).exists()
            ),
            timeout=60,
            interval=0.1,
            what="the worker subprocess to start the job",
        )
        assert proc.poll() is None, "worker exited early:\n" + log_path.read_text()[-3000:]
    finally:
        _kill(proc)
    job.refresh_from_db()
    assert job.status == Job.Status.RUNNING, "the job must still look running right after the kill"
    # the heartbeat stops with the worker
    beat = job.heartbeat_at
    time.sleep(1.0)
    job.refresh_from_db()
    assert job.heartbeat_at == beat, "something still beats for the killed worker"
    assert job.status == Job.Status.RUNNING
    return job


def test_killed_worker_job_is_rerun_by_a_new_worker(
    transactional_db, purged_queues, fast_heartbeat, surgeon_a, tmp_path
):
    from celery.contrib.testing.worker import start_worker

    from webapp.celery import app

    job = submit_job("diagnostic_sleep", params={"seconds": 6.0, "steps": 30}, user=surgeon_a)
    job = _run_until_killed(job, "cpu", tmp_path)
    first_worker = job.worker
    assert job.attempts == 1

    time.sleep(2.2)  # longer than the silence limit used below
    outcomes = recover_stale_jobs(max_silence_s=2.0)
    assert [job_id for job_id, _ in outcomes] == [job.pk]
    assert outcomes[0][1].startswith("re-queued: worker stopped responding (last heartbeat ")
    job.refresh_from_db()
    assert job.status == Job.Status.QUEUED

    with start_worker(
        app,
        pool="solo",
        perform_ping_check=False,
        queues=["cpu"],
        shutdown_timeout=30,
        loglevel="WARNING",
    ):
        wait_for(
            lambda: Job.objects.get(pk=job.pk).is_finished, timeout=60, what="the re-run to finish"
        )
    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED, job.error
    assert job.attempts == 2
    assert job.result["attempt"] == 2
    assert job.worker != first_worker
    assert job.progress == pytest.approx(1.0)


def test_killed_worker_job_without_attempts_left_is_failed_by_the_next_worker(
    transactional_db, purged_queues, fast_heartbeat, surgeon_a, tmp_path
):
    """No manual recovery here: a worker that starts later settles the job by itself."""
    # diagnostic_gpu allows a single attempt
    job = submit_job("diagnostic_gpu", params={"seconds": 6.0, "steps": 30}, user=surgeon_a)
    job = _run_until_killed(job, "gpu", tmp_path)
    proc = _start_worker("gpu", tmp_path / "second.log", stale_after_s=2.0)
    try:
        wait_for(
            lambda: proc.poll() is not None or Job.objects.get(pk=job.pk).is_finished,
            timeout=60,
            interval=0.1,
            what="the next worker to settle the abandoned job",
        )
        assert proc.poll() is None, (
            "worker exited early:\n" + (tmp_path / "second.log").read_text()[-3000:]
        )
    finally:
        _kill(proc)
    job.refresh_from_db()
    assert job.status == Job.Status.FAILED
    assert job.error_line.startswith("worker stopped responding (last heartbeat ")
    assert job.error_line.endswith(" s ago) after 1 attempt")
    assert job.attempts == 1
    assert job.finished_at is not None
    # settled once: a later sweep finds nothing to do
    assert recover_stale_jobs(max_silence_s=2.0) == []


def test_job_of_a_killed_pool_process_is_redelivered_and_rerun(
    transactional_db, purged_queues, fast_heartbeat, surgeon_a, tmp_path
):
    """Only the pool process running the job dies (say, out of memory): the worker puts the
    message back (late ack + reject_on_worker_lost) and the job runs again as attempt 2."""
    job = submit_job("diagnostic_sleep", params={"seconds": 3.0, "steps": 15}, user=surgeon_a)
    log_path = tmp_path / "worker.log"
    proc = _start_worker("cpu", log_path)
    try:
        wait_for(
            lambda: (
                proc.poll() is not None
                or Job.objects.filter(pk=job.pk, status=Job.Status.RUNNING, progress__gt=0).exists()
            ),
            timeout=60,
            interval=0.1,
            what="the worker subprocess to start the job",
        )
        assert proc.poll() is None, "worker exited early:\n" + log_path.read_text()[-3000:]
        job.refresh_from_db()
        child = int(job.worker.rsplit("pid=", 1)[1])
        assert child != proc.pid  # the job runs in a pool process, not the main one
        os.kill(child, signal.SIGKILL)
        wait_for(
            lambda: Job.objects.get(pk=job.pk).is_finished,
            timeout=60,
            interval=0.1,
            what="the redelivered job to finish",
        )
    finally:
        _kill(proc)
    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED, job.error + "\n" + log_path.read_text()[-3000:]
    assert job.attempts == 2
    assert job.result["attempt"] == 2
    assert job.result["pid"] != child
