"""Registration records: per-study scene-coordinate models and X-ray registrations.

Poses are ``T_cam_from_world`` (CT LPS mm -> C-arm camera mm), 4x4 row-major lists.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

from webapp.records.models import CTStudy, StorageKey, XrayImage


class RegistrationModel(models.Model):
    """A U-Net trained on DRRs of one CT study. ``files`` maps names (``model.json``,
    ``weights.pt``) to storage keys under one folder."""

    class Status(models.TextChoices):
        TRAINING = "training", "Training"
        READY = "ready", "Ready"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    study = models.ForeignKey(CTStudy, on_delete=models.CASCADE, related_name="registration_models")
    preset = models.CharField(max_length=16, default="quick")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.TRAINING)
    storage_prefix = models.CharField(max_length=200, blank=True)
    model_json = models.JSONField(default=dict, blank=True)
    training_curve = models.JSONField(default=list, blank=True, help_text="[{step, loss}, ...]")
    job = models.ForeignKey("jobs.Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.preset} model #{self.pk} of {self.study}"


class Registration(models.Model):
    """One X-ray registered to one CT study, with its quality figures and review."""

    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        OK = "ok", "Registered"
        FAILED = "failed", "Failed"

    class Review(models.TextChoices):
        PENDING = "pending", "Not reviewed"
        ACCEPTED = "accepted", "Accepted"
        REJECTED = "rejected", "Rejected"

    xray = models.ForeignKey(XrayImage, on_delete=models.CASCADE, related_name="registrations")
    study = models.ForeignKey(CTStudy, on_delete=models.CASCADE, related_name="registrations")
    model = models.ForeignKey(RegistrationModel, null=True, blank=True, on_delete=models.SET_NULL, related_name="registrations")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    message = models.CharField(max_length=500, blank=True)
    T_cam_from_world = models.JSONField(null=True, blank=True)  # noqa: N815 - frame naming convention
    camera = models.JSONField(default=dict, blank=True, help_text="camera.json used")
    quality = models.JSONField(default=dict, blank=True)
    stages = models.JSONField(default=dict, blank=True)
    seconds = models.FloatField(null=True, blank=True)
    n_correspondences = models.PositiveIntegerField(default=0)
    n_inliers = models.PositiveIntegerField(default=0)
    similarity = models.FloatField(null=True, blank=True)
    overlay_file = models.FileField(upload_to=StorageKey("overlays"), blank=True)
    drr_file = models.FileField(upload_to=StorageKey("drrs"), blank=True)
    job = models.ForeignKey("jobs.Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    review_status = models.CharField(max_length=16, choices=Review.choices, default=Review.PENDING)
    review_comment = models.TextField(blank=True)
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reviewed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"registration #{self.pk} of {self.xray}"


class LandmarkPair(models.Model):
    """A reviewer's 2D landmark on the X-ray (pixels) and its 3D position on the CT (LPS
    mm); the projected error is the pixel distance between the pick and the projection."""

    registration = models.ForeignKey(Registration, on_delete=models.CASCADE, related_name="landmarks")
    u_px = models.FloatField()
    v_px = models.FloatField()
    x_mm = models.FloatField()
    y_mm = models.FloatField()
    z_mm = models.FloatField()
    error_px = models.FloatField(null=True, blank=True)
    error_mm_at_detector = models.FloatField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"landmark ({self.u_px:.1f}, {self.v_px:.1f}) px of registration #{self.registration_id}"
