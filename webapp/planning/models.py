"""Two-view trajectory plans, their versions, tracked tool poses and post-op outcomes.

Lengths in mm, angles in degrees, 3D points in the plan's world frame (CT LPS when
both views are registered to the CT; see ``engine``)."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class Plan(models.Model):
    """A two-view plan for one patient. Its content lives in immutable versions."""

    patient = models.ForeignKey("records.Patient", on_delete=models.CASCADE, related_name="plans")
    name = models.CharField(max_length=200)
    xray1 = models.ForeignKey("records.XrayImage", on_delete=models.RESTRICT, related_name="+")
    xray2 = models.ForeignKey("records.XrayImage", on_delete=models.RESTRICT, related_name="+")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at", "-id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.patient.mrn})"

    @property
    def latest_version(self) -> PlanVersion | None:
        return self.versions.order_by("-number").first()


class PlanVersion(models.Model):
    """One saved state of a plan: who, when, what changed and the full JSON snapshot
    (view geometry used, trajectories with picks, triangulated points, readouts)."""

    plan = models.ForeignKey(Plan, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    summary = models.CharField(max_length=500, blank=True)
    snapshot = models.JSONField(default=dict)

    class Meta:
        ordering = ["plan", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["plan", "number"], name="unique_plan_version")
        ]

    def __str__(self) -> str:
        return f"{self.plan.name} v{self.number}"


class ToolPoseSample(models.Model):
    """A tracked tool pose received through the API, already in the plan's world frame."""

    plan = models.ForeignKey(Plan, on_delete=models.CASCADE, related_name="tool_poses")
    received_at = models.DateTimeField(auto_now_add=True, db_index=True)
    sent_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    tip = models.JSONField(help_text="[x, y, z] world mm")
    axis = models.JSONField(help_text="unit [dx, dy, dz], tip pointing forward")
    chain = models.CharField(max_length=100)
    extension_mm = models.FloatField(default=100.0)

    class Meta:
        ordering = ["-received_at", "-id"]

    def __str__(self) -> str:
        return f"tool pose #{self.pk} of plan #{self.plan_id}"


class PostOpOutcome(models.Model):
    """The achieved trajectory of one planned trajectory, compared with the plan."""

    class Source(models.TextChoices):
        PICKED = "picked", "Picked on post-op two-view images"
        REGISTRATION = "registration", "From a post-op registration"
        ENTERED = "entered", "Entered 3D coordinates"

    plan = models.ForeignKey(Plan, on_delete=models.CASCADE, related_name="outcomes")
    version = models.ForeignKey(PlanVersion, on_delete=models.CASCADE, related_name="outcomes")
    trajectory_name = models.CharField(max_length=200)
    source = models.CharField(max_length=16, choices=Source.choices)
    xray1 = models.ForeignKey(
        "records.XrayImage", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    xray2 = models.ForeignKey(
        "records.XrayImage", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    picks = models.JSONField(default=dict, blank=True)
    achieved_entry = models.JSONField(help_text="[x, y, z] world mm")
    achieved_target = models.JSONField(help_text="[x, y, z] world mm")
    entry_deviation_mm = models.FloatField()
    tip_deviation_mm = models.FloatField()
    angular_deviation_deg = models.FloatField()
    details = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"outcome of {self.trajectory_name} (plan #{self.plan_id})"
