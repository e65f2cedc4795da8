"""``python manage.py recover_jobs [--max-silence SECONDS]``: settle running jobs whose worker
stopped sending heartbeats (re-queue them if attempts remain, else fail them with the reason),
and send again queued jobs whose message was lost (``ORTHOFUSE_JOB_RESEND_AFTER_S``).
Workers run the same recovery when they start; run this from cron for extra safety."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from webapp.jobs.resend import resend_lost_jobs
from webapp.jobs.services import recover_stale_jobs


class Command(BaseCommand):
    help = "Re-queue or fail running jobs whose worker stopped responding."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--max-silence",
            type=float,
            default=None,
            help="seconds without a heartbeat after which a running job counts as abandoned "
            "(default: ORTHOFUSE_JOB_STALE_AFTER_S, 120)",
        )

    def handle(self, *args, max_silence: float | None = None, **options) -> None:
        if max_silence is not None and max_silence <= 0:
            raise CommandError(
                f"--max-silence must be a positive number of seconds (got {max_silence:g})"
            )
        outcomes = recover_stale_jobs(max_silence)
        for job_id, what in outcomes:
            self.stdout.write(f"job {job_id}: {what}")
        self.stdout.write(f"{len(outcomes)} stale job{'s' if len(outcomes) != 1 else ''} settled")
        resent = resend_lost_jobs()
        for job_id, what in resent:
            self.stdout.write(f"job {job_id}: {what}")
        if resent:
            self.stdout.write(f"{len(resent)} lost job message{'s' if len(resent) != 1 else ''} re-sent")
