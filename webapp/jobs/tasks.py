"""The one Celery task: ``run_job(job_id)``. Messages carry only the job id; the Job row is the
source of truth. Late acknowledgement plus ``reject_on_worker_lost`` put a message back when the
worker process dies; :func:`webapp.jobs.services.recover_stale_jobs` covers brokers that do not
redeliver (and machines that vanish) and :func:`webapp.jobs.resend.resend_lost_jobs` queued jobs
whose message was lost; both run whenever a worker starts, and then periodically."""

from __future__ import annotations

import logging

from celery import shared_task
from celery.signals import worker_ready
from django.db import connections

from webapp.jobs.conf import stale_after_s
from webapp.jobs.runner import TRANSIENT_ERRORS, execute_job, give_up, one_line, worker_identity

log = logging.getLogger(__name__)

MAX_TRANSIENT_RETRIES = 3


@shared_task(
    bind=True,
    name="webapp.jobs.tasks.run_job",
    acks_late=True,
    reject_on_worker_lost=True,
    ignore_result=True,
    autoretry_for=TRANSIENT_ERRORS,
    retry_backoff=2,
    retry_backoff_max=60,
    retry_jitter=True,
    max_retries=MAX_TRANSIENT_RETRIES,
)
def run_job(self, job_id: int) -> str:
    """Run the job ``job_id`` (see :func:`webapp.jobs.runner.execute_job`)."""
    try:
        return execute_job(int(job_id), worker=worker_identity(self.request.hostname))
    except TRANSIENT_ERRORS as exc:
        if self.request.retries >= self.max_retries:
            reason = (
                f"gave up after {self.max_retries} retries of a transient error: "
                f"{type(exc).__name__}: {one_line(exc)}"
            )
            try:
                give_up(int(job_id), reason)
            except Exception:  # noqa: BLE001 - recover_stale_jobs settles it later
                log.exception("job %s: could not record that it failed", job_id)
            return "failed"
        raise  # autoretry_for schedules the next try with exponential backoff


def _recover_quietly() -> None:
    from webapp.jobs.resend import resend_lost_jobs
    from webapp.jobs.services import recover_stale_jobs

    try:
        recover_stale_jobs()  # logs each job it settles
        resend_lost_jobs()  # and each queued job whose message was lost
    except Exception:  # noqa: BLE001 - never take a worker down over this
        log.exception("recovering stale jobs failed")
    finally:
        connections.close_all()  # do not hand an open connection to forked children


@worker_ready.connect
def recover_on_worker_start(sender=None, **kwargs) -> None:
    """A starting worker settles jobs left ``running`` by workers that died, then repeats that
    every half ``ORTHOFUSE_JOB_STALE_AFTER_S`` for as long as it runs."""
    _recover_quietly()
    timer = getattr(sender, "timer", None)
    if timer is not None:
        timer.call_repeatedly(max(1.0, stale_after_s() / 2), _recover_quietly)
