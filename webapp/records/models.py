"""Clinical records: care teams, patients, C-arms, CT studies and X-ray images.

Frames and units follow docs/CONVENTIONS.md: lengths in mm, angles in degrees,
CT affines map voxel index (i, j, k, 1) to DICOM LPS mm.
"""

from __future__ import annotations

import uuid

import numpy as np
from django.conf import settings
from django.db import models
from django.utils.deconstruct import deconstructible


@deconstructible
class StorageKey:
    """``upload_to`` that never trusts the client's file name: ``<prefix>/<uuid><ext>``."""

    KNOWN_SUFFIXES = (".nii.gz", ".npy", ".npz", ".dcm", ".png", ".json", ".zip", ".nii", ".pt")

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def __call__(self, instance: models.Model, filename: str) -> str:
        lowered = filename.lower()
        suffix = next((ext for ext in self.KNOWN_SUFFIXES if lowered.endswith(ext)), "")
        return f"{self.prefix}/{uuid.uuid4().hex}{suffix}"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, StorageKey) and other.prefix == self.prefix


class CareTeam(models.Model):
    """A group of clinicians; surgeons and reviewers see only their teams' patients."""

    name = models.CharField(max_length=200, unique=True)
    members = models.ManyToManyField(settings.AUTH_USER_MODEL, related_name="care_teams", blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Patient(models.Model):
    class Sex(models.TextChoices):
        FEMALE = "F", "Female"
        MALE = "M", "Male"
        OTHER = "O", "Other"
        UNKNOWN = "U", "Unknown"

    mrn = models.CharField("MRN", max_length=64, unique=True)
    family_name = models.CharField(max_length=200, blank=True)
    given_name = models.CharField(max_length=200, blank=True)
    birth_date = models.DateField(null=True, blank=True)
    sex = models.CharField(max_length=1, choices=Sex.choices, default=Sex.UNKNOWN)
    care_teams = models.ManyToManyField(CareTeam, related_name="patients", blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["family_name", "given_name", "mrn"]

    def __str__(self) -> str:
        name = ", ".join(part for part in (self.family_name, self.given_name) if part)
        return f"{name or 'Unnamed'} ({self.mrn})"


class CArm(models.Model):
    """A C-arm device. Image intensifiers need dewarping; flat panels only intrinsics."""

    class DetectorType(models.TextChoices):
        IMAGE_INTENSIFIER = "image_intensifier", "Image intensifier"
        FLAT_PANEL = "flat_panel", "Flat panel"

    class Rotation(models.IntegerChoices):
        NONE = 0, "0°"
        CW90 = 90, "90° clockwise"
        CW180 = 180, "180°"
        CW270 = 270, "270° clockwise"

    name = models.CharField(max_length=200, unique=True)
    manufacturer = models.CharField(max_length=200, blank=True)
    model_name = models.CharField("model", max_length=200, blank=True)
    detector_type = models.CharField(max_length=32, choices=DetectorType.choices)
    detector_width_px = models.PositiveIntegerField(null=True, blank=True)
    detector_height_px = models.PositiveIntegerField(null=True, blank=True)
    pixel_spacing_x_mm = models.FloatField("pixel spacing x (columns, mm)", null=True, blank=True)
    pixel_spacing_y_mm = models.FloatField("pixel spacing y (rows, mm)", null=True, blank=True)
    source_to_detector_mm = models.FloatField(null=True, blank=True)
    flip_horizontal = models.BooleanField(default=False)
    flip_vertical = models.BooleanField(default=False)
    rotate_deg = models.IntegerField(choices=Rotation.choices, default=Rotation.NONE)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        verbose_name = "C-arm"

    def __str__(self) -> str:
        return self.name

    @property
    def needs_dewarping(self) -> bool:
        return self.detector_type == self.DetectorType.IMAGE_INTENSIFIER


class CTStudy(models.Model):
    """An assembled CT volume. ``volume_file`` holds int16 HU as a .npy array of shape
    (slices, rows, cols) = (k, j, i); ``affine`` maps (i, j, k, 1) to LPS mm."""

    class Status(models.TextChoices):
        IMPORTING = "importing", "Importing"
        READY = "ready", "Ready"
        FAILED = "failed", "Failed"

    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="ct_studies")
    study_instance_uid = models.CharField(max_length=128, blank=True)
    series_instance_uid = models.CharField(max_length=128, blank=True)
    description = models.CharField(max_length=300, blank=True)
    study_date = models.DateField(null=True, blank=True)
    modality = models.CharField(max_length=16, default="CT")
    volume_file = models.FileField(upload_to=StorageKey("volumes"), blank=True)
    shape = models.JSONField(default=list, help_text="[slices, rows, cols]")
    spacing_mm = models.JSONField(default=list, help_text="[di, dj, dk] voxel size in mm")
    affine = models.JSONField(default=list, help_text="4x4 voxel (i, j, k, 1) -> LPS mm")
    hu_min = models.FloatField(null=True, blank=True)
    hu_max = models.FloatField(null=True, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.IMPORTING)
    provenance = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "CT study"
        verbose_name_plural = "CT studies"

    def __str__(self) -> str:
        return f"{self.description or 'CT'} ({self.patient.mrn})"

    @property
    def affine_array(self) -> np.ndarray:
        return np.asarray(self.affine, dtype=np.float64).reshape(4, 4)


class XrayImage(models.Model):
    """An intra-operative C-arm image with the acquisition geometry read from its header."""

    class Format(models.TextChoices):
        DICOM = "dicom", "DICOM"
        PNG = "png", "PNG"

    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="xrays")
    carm = models.ForeignKey(CArm, null=True, blank=True, on_delete=models.SET_NULL, related_name="xrays")
    description = models.CharField(max_length=300, blank=True)
    file_format = models.CharField(max_length=8, choices=Format.choices)
    original_file = models.FileField(upload_to=StorageKey("xrays"))
    dewarped_file = models.FileField(upload_to=StorageKey("xrays-dewarped"), blank=True)
    dewarp_info = models.JSONField(default=dict, blank=True)
    sop_instance_uid = models.CharField(max_length=128, blank=True)
    modality = models.CharField(max_length=16, blank=True)
    rows = models.PositiveIntegerField()
    cols = models.PositiveIntegerField()
    bits_stored = models.PositiveSmallIntegerField(null=True, blank=True)
    photometric_interpretation = models.CharField(max_length=16, default="MONOCHROME2")
    distance_source_to_detector_mm = models.FloatField(null=True, blank=True)
    distance_source_to_patient_mm = models.FloatField(null=True, blank=True)
    pixel_spacing_x_mm = models.FloatField(null=True, blank=True)
    pixel_spacing_y_mm = models.FloatField(null=True, blank=True)
    primary_angle_deg = models.FloatField(null=True, blank=True)
    secondary_angle_deg = models.FloatField(null=True, blank=True)
    acquired_at = models.DateTimeField(null=True, blank=True)
    ground_truth = models.JSONField(
        default=dict,
        blank=True,
        help_text="simulated images only: the true T_cam_from_world and camera used to make them",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "X-ray image"

    def __str__(self) -> str:
        return f"{self.description or 'X-ray'} ({self.patient.mrn})"
