"""Small record factories shared by the records/core tests (tiny files, seeded pixels)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from django.core.files.base import ContentFile

from webapp.records.models import CArm, CTStudy, XrayImage


def make_study(patient, *, shape=(4, 5, 6), spacing=(0.8, 0.9, 2.5), seed=0, **fields) -> CTStudy:
    """A ready CT study whose stored volume is int16 HU of ``shape`` (slices, rows, cols)."""
    rng = np.random.default_rng(seed)
    volume = rng.integers(-1000, 2000, size=shape, dtype=np.int16)
    affine = np.diag([spacing[0], spacing[1], spacing[2], 1.0])
    affine[:3, 3] = [-10.0, -20.0, 30.0]
    buffer = io.BytesIO()
    np.save(buffer, volume)
    study = CTStudy(
        patient=patient,
        description=fields.pop("description", f"CT of {patient.mrn}"),
        series_instance_uid=fields.pop("series_instance_uid", f"1.2.3.{patient.pk}"),
        shape=list(shape),
        spacing_mm=list(spacing),
        affine=affine.tolist(),
        hu_min=float(volume.min()),
        hu_max=float(volume.max()),
        status=CTStudy.Status.READY,
        provenance={"source": "synthetic test volume", "seed": seed},
        **fields,
    )
    study.volume_file.save("volume.npy", ContentFile(buffer.getvalue()), save=False)
    study.save()
    return study


def png_bytes(image: np.ndarray) -> bytes:
    import cv2

    ok, data = cv2.imencode(".png", image)
    assert ok
    return data.tobytes()


def make_xray(patient, *, rows=40, cols=60, seed=0, carm=None, image=None, **fields) -> XrayImage:
    """A 16-bit PNG X-ray (a horizontal ramp plus noise unless ``image`` is given)."""
    if image is None:
        rng = np.random.default_rng(seed)
        ramp = np.tile(np.linspace(0, 60000, cols), (rows, 1))
        image = np.clip(ramp + rng.normal(0, 50, (rows, cols)), 0, 65535).astype(np.uint16)
    xray = XrayImage(
        patient=patient,
        carm=carm,
        description=fields.pop("description", f"AP view of {patient.mrn}"),
        file_format=XrayImage.Format.PNG,
        rows=image.shape[0],
        cols=image.shape[1],
        bits_stored=16,
        distance_source_to_detector_mm=1000.0,
        pixel_spacing_x_mm=0.3,
        pixel_spacing_y_mm=0.3,
        primary_angle_deg=12.5,
        secondary_angle_deg=-3.0,
        **fields,
    )
    xray.original_file.save("xray.png", ContentFile(png_bytes(image)), save=False)
    xray.save()
    return xray


def make_carm(name="Ziehm test", **fields) -> CArm:
    fields.setdefault("detector_type", CArm.DetectorType.FLAT_PANEL)
    return CArm.objects.create(name=name, **fields)


@pytest.fixture(autouse=True)
def isolated_media(settings, tmp_path):
    """Stored files and upload staging under the test's own temporary folder.
    Import this fixture into a test module to activate it there."""
    settings.MEDIA_ROOT = str(tmp_path / "media")
    settings.ORTHOFUSE_STAGING_DIR = str(tmp_path / "staging")
    return tmp_path
