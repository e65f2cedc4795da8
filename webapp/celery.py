"""The Celery app. Queues: ``cpu`` (dewarping, imports, calibration) and ``gpu`` (training,
registration). GPU workers run ``-Q gpu -c 1 --max-tasks-per-child=1``.

Messages carry only a Job id; the Job row is the source of truth. Each worker process
starts by limiting torch to ``ORTHOFUSE_WORKER_TORCH_THREADS`` threads, so training leaves
the web server its share of the CPU (``make run`` also nices the worker by 10).
"""

from __future__ import annotations

import logging
import os

from celery import Celery
from celery.signals import worker_process_init
from kombu import Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")

app = Celery("orthofuse")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.update(
    task_queues=(Queue("cpu"), Queue("gpu")),
    task_default_queue="cpu",
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    task_ignore_result=True,
    task_serializer="json",
    accept_content=["json"],
    broker_connection_retry_on_startup=True,
)
app.autodiscover_tasks()


logger = logging.getLogger(__name__)


@worker_process_init.connect
def limit_torch_threads(**_: object) -> int:
    """At the start of each worker (pool) process: torch's intra-op threads (and OpenMP's,
    for libraries loaded later) to ``settings.ORTHOFUSE_WORKER_TORCH_THREADS``; returns the
    count set. A value below 1 is named in the log and taken as 1."""
    from django.conf import settings

    threads = int(getattr(settings, "ORTHOFUSE_WORKER_TORCH_THREADS", 1))
    if threads < 1:
        logger.warning("ORTHOFUSE_WORKER_TORCH_THREADS=%s is below 1; using 1 thread", threads)
        threads = 1
    os.environ["OMP_NUM_THREADS"] = str(threads)
    import torch

    torch.set_num_threads(threads)
    logger.info("worker process: torch uses %d thread(s)", threads)
    return threads
