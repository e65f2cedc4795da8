"""Background jobs. The Job row is the source of truth for status, progress, timings and
result; Celery messages carry only the job id."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class Job(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    FINISHED = (Status.SUCCEEDED, Status.FAILED, Status.CANCELLED)

    kind = models.CharField(max_length=64, db_index=True)
    queue = models.CharField(max_length=16, default="cpu")
    status = models.CharField(
        max_length=16, choices=Status.choices, default=Status.QUEUED, db_index=True
    )
    progress = models.FloatField(default=0.0, help_text="0..1")
    message = models.CharField(max_length=500, blank=True)
    params = models.JSONField(default=dict, blank=True)
    result = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="jobs",
    )
    patient = models.ForeignKey(
        "records.Patient", null=True, blank=True, on_delete=models.CASCADE, related_name="jobs"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    worker = models.CharField(max_length=200, blank=True)
    cancel_requested = models.BooleanField(default=False)
    timings = models.JSONField(default=dict, blank=True, help_text="stage name -> seconds")
    task_id = models.CharField(
        max_length=64, blank=True, help_text="Celery task id of the last send"
    )
    sent_at = models.DateTimeField(
        null=True, blank=True, help_text="when its message was last sent to the queue"
    )
    live = models.JSONField(
        default=dict, blank=True, help_text="small live data a handler publishes while running"
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["status", "heartbeat_at"], name="jobs_status_heartbeat")]

    def __str__(self) -> str:
        return f"{self.kind} #{self.pk} ({self.status})"

    @property
    def is_finished(self) -> bool:
        return self.status in self.FINISHED

    @property
    def error_line(self) -> str:
        """The one line the UI shows; ``error`` may continue with a traceback."""
        return self.error.strip().splitlines()[0] if self.error.strip() else ""

    @property
    def label(self) -> str:
        from webapp.jobs.registry import all_specs

        spec = all_specs().get(self.kind)
        return spec.label if spec else self.kind.replace("_", " ")

    @property
    def duration_s(self) -> float | None:
        if self.started_at and self.finished_at:
            return (self.finished_at - self.started_at).total_seconds()
        return None
