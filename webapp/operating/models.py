"""Intra-operative sessions: a surgeon opens one for a patient and an operation; every X-ray
that arrives for that patient while it is open becomes a shot of the session, registered
automatically (see :mod:`webapp.operating.services`)."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q


class OperatingSession(models.Model):
    """One operation on one patient; open while ``closed_at`` is empty (at most one open
    session per patient)."""

    patient = models.ForeignKey(
        "records.Patient", on_delete=models.CASCADE, related_name="operating_sessions"
    )
    operation = models.CharField(max_length=200)
    study = models.ForeignKey(
        "records.CTStudy",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="the CT the shots register to (empty: the patient's latest ready CT)",
    )
    plan = models.ForeignKey(
        "planning.Plan", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    opened_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    opened_at = models.DateTimeField(auto_now_add=True)
    closed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-opened_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["patient"],
                condition=Q(closed_at__isnull=True),
                name="one_open_operating_session_per_patient",
            )
        ]

    def __str__(self) -> str:
        return f"{self.operation} ({self.patient.mrn})"

    @property
    def is_open(self) -> bool:
        return self.closed_at is None


class SessionShot(models.Model):
    """An X-ray that arrived during a session, with its automatic registration.

    ``device_note`` says in words why its device is not calibrated ('' when it is);
    ``refusal`` why no registration could be started ('' when one was)."""

    session = models.ForeignKey(OperatingSession, on_delete=models.CASCADE, related_name="shots")
    xray = models.ForeignKey("records.XrayImage", on_delete=models.CASCADE, related_name="+")
    registration = models.ForeignKey(
        "xray_registration.Registration",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    device_note = models.CharField(max_length=300, blank=True)
    refusal = models.CharField(max_length=500, blank=True)
    arrived_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["arrived_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["xray"], name="one_session_shot_per_xray")
        ]

    def __str__(self) -> str:
        return f"shot of X-ray {self.xray_id} in session {self.session_id}"
