"""Running one job inside a worker: claim the row, run its handler, record the outcome.

The Celery task (:mod:`webapp.jobs.tasks`) is a thin wrapper around :func:`execute_job`.
Tests call :func:`execute_job` directly to exercise the outcomes without a broker.
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import threading
import time
import traceback
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from django.db import InterfaceError, OperationalError, connections
from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerOperationalError

from webapp.jobs.conf import heartbeat_interval_s, stale_after_s
from webapp.jobs.context import JobContext, JobSuperseded
from webapp.jobs.models import Job
from webapp.jobs.registry import JobCancelled, JobError, JobSpec, get_spec

log = logging.getLogger(__name__)

# Errors worth retrying the whole task for (database or broker briefly unreachable).
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    OperationalError,
    InterfaceError,
    ConnectionError,
    BrokerOperationalError,
)

_WORKER_RE = re.compile(r"host=(?P<host>\S+) pid=(?P<pid>\d+)")


def worker_identity(nodename: str | None = None) -> str:
    """``"<celery node> host=<machine> pid=<process>"``, stored in ``Job.worker``."""
    node = nodename or "local"
    return f"{node} host={socket.gethostname()} pid={os.getpid()}"


def human_seconds(seconds: float) -> str:
    """``42 s``, ``5 min``, ``3.2 h``: for messages about silences and limits."""
    seconds = max(0.0, float(seconds))
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:400]


class _Heartbeat:
    """Calls ``ctx.beat()`` every few seconds from a thread while the handler runs, so a live
    worker is told apart from a dead one even during long silent steps."""

    def __init__(self, ctx: JobContext, interval_s: float) -> None:
        self.ctx, self.interval_s = ctx, interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"job-{ctx.job.pk}-heartbeat", daemon=True
        )

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(timeout=self.interval_s + 5)

    def _run(self) -> None:
        try:
            while not self._stop.wait(self.interval_s):
                try:
                    self.ctx.beat()
                except Exception as exc:  # noqa: BLE001 - keep beating through DB hiccups
                    log.warning("job %s heartbeat failed: %s", self.ctx.job.pk, one_line(exc))
        finally:
            connections.close_all()  # this thread's connections only


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def previous_run_is_dead(job: Job, *, wait: bool = True) -> bool:
    """Whether the run recorded as ``running`` on ``job`` has stopped.

    Dead when its heartbeat is stale, or it ran in a process of this machine that no longer
    exists; otherwise (``wait``) watch the heartbeat for three intervals: a live run moves it.
    """
    now = timezone.now()
    if job.heartbeat_at is None or (now - job.heartbeat_at).total_seconds() > stale_after_s():
        return True
    match = _WORKER_RE.search(job.worker or "")
    if match and match["host"] == socket.gethostname() and int(match["pid"]) != os.getpid():
        if not _pid_alive(int(match["pid"])):
            return True
    if not wait:
        return False
    seen = job.heartbeat_at
    deadline = time.monotonic() + 3 * heartbeat_interval_s() + 1
    while time.monotonic() < deadline:
        time.sleep(min(1.0, heartbeat_interval_s() / 2))
        row = Job.objects.filter(pk=job.pk).values("status", "heartbeat_at", "attempts").first()
        if row is None or row["status"] != Job.Status.RUNNING or row["attempts"] != job.attempts:
            return False  # settled by someone else meanwhile: leave it to them
        if row["heartbeat_at"] != seen:
            return False
    return True


def _fail(
    job: Job, error: str, *, from_status: str | None = None, attempts: int | None = None
) -> bool:
    """Mark ``job`` failed if it is still in the state we saw; True when we did."""
    rows = Job.objects.filter(pk=job.pk, status=from_status or job.status)
    if attempts is not None:
        rows = rows.filter(attempts=attempts)
    now = timezone.now()
    return bool(rows.update(status=Job.Status.FAILED, error=error, message="", finished_at=now))


def _claim(job_id: int, worker: str) -> tuple[Job, JobSpec, int] | None:
    """Move the job to ``running`` under a new attempt number, or return None to skip it."""
    for _ in range(5):
        job = Job.objects.filter(pk=job_id).first()
        if job is None:
            log.warning("job %s does not exist; message dropped", job_id)
            return None
        if job.status in Job.FINISHED:
            log.info("job %s already %s; skipped", job_id, job.status)
            return None
        if job.cancel_requested:
            Job.objects.filter(pk=job.pk, status=job.status, attempts=job.attempts).update(
                status=Job.Status.CANCELLED, finished_at=timezone.now(), message="cancelled"
            )
            return None
        try:
            spec = get_spec(job.kind)
        except JobError as exc:
            _fail(job, str(exc), attempts=job.attempts)
            return None
        if job.status == Job.Status.RUNNING:
            if not previous_run_is_dead(job):
                log.info(
                    "job %s is running elsewhere (%s); duplicate delivery skipped",
                    job_id,
                    job.worker,
                )
                return None
            silence = timezone.now() - (job.heartbeat_at or job.started_at or job.created_at)
            if job.attempts >= spec.max_attempts:
                _fail(
                    job,
                    f"worker stopped responding (last heartbeat {human_seconds(silence.total_seconds())} ago) "
                    f"after {job.attempts} attempt{'s' if job.attempts != 1 else ''}",
                    attempts=job.attempts,
                )
                return None
        elif job.attempts >= spec.max_attempts:
            _fail(job, f"gave up after {job.attempts} attempts", attempts=job.attempts)
            return None
        attempt = job.attempts + 1
        now = timezone.now()
        won = Job.objects.filter(pk=job.pk, status=job.status, attempts=job.attempts).update(
            status=Job.Status.RUNNING,
            attempts=attempt,
            started_at=now,
            heartbeat_at=now,
            finished_at=None,
            worker=worker[:200],
            error="",
            progress=0.0,
            message="started"
            if attempt == 1
            else f"started again (attempt {attempt} of {spec.max_attempts})",
            timings={},
            live={},
            result={},
        )
        if won:
            job.refresh_from_db()
            return job, spec, attempt
    log.warning("job %s: could not claim it after repeated races; skipped", job_id)
    return None


def _json_result(result: Any) -> Any:
    if result is None:
        return {}
    try:
        return json.loads(json.dumps(result, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise TypeError(f"the job's result is not JSON: {exc}") from exc


def _finish(ctx: JobContext, status: str, **fields: Any) -> bool:
    now = timezone.now()
    updated = ctx._owned().update(
        status=status, finished_at=now, heartbeat_at=now, timings=ctx.job.timings, **fields
    )
    if not updated:
        log.warning(
            "job %s attempt %s finished as %s but no longer owns the row",
            ctx.job.pk,
            ctx.attempt,
            status,
        )
    return bool(updated)


def execute_job(job_id: int, *, worker: str | None = None) -> str:
    """Run job ``job_id`` once. Returns the outcome: ``succeeded``, ``failed``, ``cancelled``,
    ``skipped`` (finished, duplicate or missing) or ``superseded``.

    Transient database/broker errors propagate (the task retries them) after the row is put
    back to ``queued`` without using up an attempt.
    """
    claim = _claim(job_id, worker or worker_identity())
    if claim is None:
        return "skipped"
    job, spec, attempt = claim
    ctx = JobContext(job, attempt)
    log.info("job %s (%s) attempt %s started on %s", job.pk, job.kind, attempt, job.worker)
    try:
        with _Heartbeat(ctx, heartbeat_interval_s()):
            result = _json_result(spec.handler(job, ctx))
    except JobSuperseded as exc:
        log.warning("%s", exc)
        return "superseded"
    except JobCancelled:
        _finish(ctx, Job.Status.CANCELLED, message="cancelled")
        return "cancelled"
    except SoftTimeLimitExceeded:
        if Job.objects.filter(pk=job.pk, cancel_requested=True).exists():
            _finish(ctx, Job.Status.CANCELLED, message="cancelled")
            return "cancelled"
        _finish(
            ctx,
            Job.Status.FAILED,
            error=f"time limit of {spec.soft_time_limit} s exceeded",
        )
        return "failed"
    except JobError as exc:
        _finish(ctx, Job.Status.FAILED, error=one_line(exc) or "the job failed")
        return "failed"
    except TRANSIENT_ERRORS as exc:
        log.warning("job %s: transient error, will retry: %s", job.pk, one_line(exc))
        try:
            ctx._owned().update(
                status=Job.Status.QUEUED,
                attempts=attempt - 1,
                message=f"retrying after a transient error: {type(exc).__name__}",
            )
        except Exception:  # noqa: BLE001 - the database may be the thing that is down
            log.warning("job %s: could not put it back to queued", job.pk)
        raise
    except Exception as exc:
        log.exception("job %s (%s) failed with an internal error", job.pk, job.kind)
        line = f"internal error: {type(exc).__name__}: {one_line(exc)}"
        _finish(ctx, Job.Status.FAILED, error=line + "\n\n" + traceback.format_exc())
        return "failed"
    _finish(
        ctx, Job.Status.SUCCEEDED, progress=1.0, message=ctx.job.message or "done", result=result
    )
    log.info("job %s (%s) succeeded", job.pk, job.kind)
    return "succeeded"


def give_up(job_id: int, reason: str) -> bool:
    """Fail a job that is not finished (used when the task ran out of retries)."""
    job = Job.objects.filter(pk=job_id).first()
    if job is None or job.is_finished:
        return False
    return _fail(job, reason)
