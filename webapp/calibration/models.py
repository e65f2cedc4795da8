"""C-arm calibration records: phantom definitions and versioned calibration profiles.

A profile stores every field of docs/CONVENTIONS.md ``profile.json`` in ``data``
(forward/inverse polynomials, K, source_mm, residuals, beads used); the columns beside
it are copies for listing and filtering.
"""

from __future__ import annotations

import hashlib
import json

from django.conf import settings
from django.db import models

from webapp.records.models import CArm, StorageKey


class Phantom(models.Model):
    """A calibration phantom in the ``phantom.json`` format (detector frame, mm)."""

    name = models.CharField(max_length=200, unique=True)
    definition = models.JSONField(help_text="phantom.json content")
    builtin = models.BooleanField(default=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def n_beads(self) -> int:
        return len(self.definition.get("beads", []))

    @property
    def kind(self) -> str:
        """"grid plate" for a dewarping plate (``grid`` form), else the bead layers."""
        if isinstance(self.definition.get("grid"), dict):
            return "grid plate"
        planes = {b.get("plane") for b in self.definition.get("beads", []) if isinstance(b, dict)}
        return "two-layer" if 1 in planes else "single-plane beads"

    @property
    def summary(self) -> str:
        g = self.definition.get("grid")
        if isinstance(g, dict):
            return (
                f"{g.get('lattice')} lattice, {g.get('pitch_mm')} mm pitch, "
                f"{g.get('diameter_mm')} mm {g.get('marker')}s (distortion only)"
            )
        return f"{self.n_beads} beads"


class CalibrationProfile(models.Model):
    """One calibration of one C-arm at one C-arm angle. Versions count up per C-arm."""

    class Status(models.TextChoices):
        COMPUTING = "computing", "Computing"
        DRAFT = "draft", "Awaiting review"
        ACTIVE = "active", "Active"
        RETIRED = "retired", "Retired"
        REJECTED = "rejected", "Rejected"
        FAILED = "failed", "Failed"

    carm = models.ForeignKey(CArm, on_delete=models.CASCADE, related_name="profiles")
    version = models.PositiveIntegerField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.COMPUTING)
    phantom = models.ForeignKey(Phantom, null=True, on_delete=models.SET_NULL, related_name="profiles")
    primary_angle_deg = models.FloatField(default=0.0, help_text="LAO(+)/RAO(-) of the calibration")
    secondary_angle_deg = models.FloatField(default=0.0, help_text="cranial(+)/caudal(-)")
    image_file = models.FileField(upload_to=StorageKey("calibration-images"))
    data = models.JSONField(default=dict, blank=True, help_text="profile.json content")
    data_digest = models.CharField(
        max_length=64, blank=True, editable=False,
        help_text="SHA-256 of data, set on save (keys the decoded-profile cache)",
    )
    rms_px = models.FloatField(null=True, blank=True)
    max_px = models.FloatField(null=True, blank=True)
    rms_mm = models.FloatField(null=True, blank=True)
    beads_used = models.PositiveIntegerField(null=True, blank=True)
    message = models.CharField(max_length=500, blank=True)
    attempt = models.JSONField(
        default=dict, blank=True, help_text="a refused calibration: the blobs it detected and advice"
    )
    calibrated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    calibrated_at = models.DateTimeField(auto_now_add=True)
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reviewed_at = models.DateTimeField(null=True, blank=True)
    review_comment = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["carm__name", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["carm", "version"], name="unique_profile_version"),
        ]

    def __str__(self) -> str:
        return f"{self.carm.name} v{self.version} ({self.get_status_display()})"

    def save(self, *args, **kwargs) -> None:
        update_fields = kwargs.get("update_fields")
        if "data" not in self.get_deferred_fields() and (
            update_fields is None or "data" in update_fields
        ):
            self.data_digest = profile_data_digest(self.data)
            if update_fields is not None:
                kwargs["update_fields"] = {*update_fields, "data_digest"}
        super().save(*args, **kwargs)


def profile_data_digest(data) -> str:
    """SHA-256 of a profile's data as canonical JSON."""
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()
