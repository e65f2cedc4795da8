"""Jobs whose broker message was lost are sent again.

A job stays ``queued`` until a worker claims it. If its message is lost (a broker restarted
without persistence, a queue purged, a publish that never arrived) nothing would ever claim
it, and it would block what waits on it (a registration model's retraining, for one). A job
still queued ``ORTHOFUSE_JOB_RESEND_AFTER_S`` after its last send, on a queue where no job is
running with a live heartbeat (so its message is not just waiting behind another job), is sent
again under a new task id. Duplicates are harmless: the first message claims the job and the
worker skips any other (``webapp.jobs.runner._claim``).
"""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from webapp.jobs.conf import resend_after_s, stale_after_s
from webapp.jobs.models import Job
from webapp.jobs.registry import all_specs
from webapp.jobs.runner import human_seconds

log = logging.getLogger(__name__)


def busy_queues(now=None) -> set[str]:
    """Queues with a running job whose worker is alive (its heartbeat is recent)."""
    now = now or timezone.now()
    live = now - timedelta(seconds=stale_after_s())
    running = Job.objects.filter(status=Job.Status.RUNNING, heartbeat_at__gte=live)
    return set(running.values_list("queue", flat=True))


def resend_lost_jobs(after_s: float | None = None) -> list[tuple[int, str]]:
    """Send again the queued jobs that no worker took (see the module). Returns
    ``[(job_id, what happened), ...]``; cheap when there are none (one indexed query)."""
    from webapp.jobs.services import _send

    wait = resend_after_s() if after_s is None else float(after_s)
    now = timezone.now()
    cutoff = now - timedelta(seconds=wait)
    waiting = Job.objects.filter(status=Job.Status.QUEUED, cancel_requested=False).filter(
        Q(sent_at__lt=cutoff) | Q(sent_at__isnull=True, created_at__lt=cutoff)
    )
    if not waiting.exists():
        return []
    busy = busy_queues(now)
    specs = all_specs()
    outcomes: list[tuple[int, str]] = []
    for job in waiting.exclude(queue__in=busy).order_by("id"):
        spec = specs.get(job.kind)
        if spec is None:
            continue  # the claim fails it with the reason once a worker sees it
        since = job.sent_at or job.created_at
        what = f"re-sent: no worker took it in {human_seconds((now - since).total_seconds())}"
        task_id = str(uuid.uuid4())
        mine = Job.objects.filter(pk=job.pk, status=Job.Status.QUEUED, task_id=job.task_id)
        with transaction.atomic():
            if mine.update(task_id=task_id, sent_at=now, message=what):
                transaction.on_commit(
                    lambda pk=job.pk, spec=spec, task_id=task_id: _send(pk, spec, task_id)
                )
                outcomes.append((job.pk, what))
                log.warning("job %s (%s) %s", job.pk, job.kind, what)
    return outcomes
