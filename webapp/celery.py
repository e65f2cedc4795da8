"""The Celery app. Queues: ``cpu`` (dewarping, imports, calibration) and ``gpu`` (training,
registration). GPU workers run ``-Q gpu -c 1 --max-tasks-per-child=1``.

Messages carry only a Job id; the Job row is the source of truth.
"""

from __future__ import annotations

import os

from celery import Celery
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
