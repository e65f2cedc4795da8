"""X-ray import service and ``import_xray`` command."""

from __future__ import annotations

import io

import cv2
import numpy as np
import pydicom
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from tests.conftest import shared_path
from tests.dicomio.synth import xray_dataset
from webapp.core.models import AuditEvent
from webapp.records.ct_import import ImportRefused
from webapp.records.models import CArm, Patient, XrayImage
from webapp.records.xray_import import import_xray


@pytest.fixture(autouse=True)
def media_root(tmp_path, settings):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    }
    return settings.MEDIA_ROOT


@pytest.fixture
def carm(db):
    return CArm.objects.create(
        name="Ziehm test",
        detector_type=CArm.DetectorType.FLAT_PANEL,
        pixel_spacing_x_mm=0.15,
        pixel_spacing_y_mm=0.16,
        source_to_detector_mm=1020.0,
    )


def _files(root):
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def test_dicom_xa_import_fields_preamble_and_audit(db, tmp_path, patient_a, surgeon_a):
    pixels = np.random.default_rng(0).integers(0, 4096, size=(10, 14)).astype(np.uint16)
    path = tmp_path / "xa.dcm"
    xray_dataset(pixels, imager_spacing=(0.2, 0.3)).save_as(path, enforce_file_format=True)
    assert path.read_bytes()[:2] == b"MZ"  # a hostile preamble in the upload
    xray = import_xray(path, patient_a, user=surgeon_a, description="AP pelvis")
    xray.refresh_from_db()
    assert (xray.rows, xray.cols) == (10, 14)
    assert xray.file_format == "dicom" and xray.modality == "XA"
    assert xray.pixel_spacing_x_mm == pytest.approx(0.3)
    assert xray.pixel_spacing_y_mm == pytest.approx(0.2)
    assert xray.distance_source_to_detector_mm == pytest.approx(1000.0)
    assert xray.distance_source_to_patient_mm == pytest.approx(700.0)
    assert xray.primary_angle_deg == pytest.approx(10.0)
    assert xray.secondary_angle_deg == pytest.approx(-5.0)
    assert xray.bits_stored == 12 and xray.photometric_interpretation == "MONOCHROME2"
    assert xray.original_file.name.startswith("xrays/") and xray.original_file.name.endswith(".dcm")
    with xray.original_file.open("rb") as fh:
        stored = fh.read()
    assert stored[:128] == b"\0" * 128 and stored[128:132] == b"DICM"
    np.testing.assert_array_equal(pydicom.dcmread(io.BytesIO(stored)).pixel_array, pixels)
    assert AuditEvent.objects.filter(object_type="XrayImage", object_id=str(xray.pk)).exists()


def test_png_needs_a_carm(db, tmp_path, patient_a, media_root):
    cv2.imwrite(str(tmp_path / "shot.png"), np.zeros((8, 8), np.uint16))
    with pytest.raises(ImportRefused) as err:
        import_xray(tmp_path / "shot.png", patient_a)
    assert "choose the C-arm" in err.value.message
    assert XrayImage.objects.count() == 0 and _files(media_root) == []


def test_png_with_carm_takes_its_geometry(db, tmp_path, patient_a, carm):
    img = np.random.default_rng(2).integers(0, 65535, size=(8, 9)).astype(np.uint16)
    cv2.imwrite(str(tmp_path / "shot.png"), img)
    xray = import_xray(tmp_path / "shot.png", patient_a, carm=carm)
    assert xray.file_format == "png" and xray.bits_stored == 16
    assert (xray.pixel_spacing_x_mm, xray.pixel_spacing_y_mm) == (0.15, 0.16)
    assert xray.distance_source_to_detector_mm == 1020.0 and xray.carm == carm
    override = import_xray(tmp_path / "shot.png", patient_a, carm=carm, pixel_spacing_mm=(0.5, 0.4))
    assert (override.pixel_spacing_x_mm, override.pixel_spacing_y_mm) == (0.5, 0.4)


def test_png_with_carm_missing_spacing_is_refused(db, tmp_path, patient_a):
    bare = CArm.objects.create(name="bare", detector_type=CArm.DetectorType.IMAGE_INTENSIFIER)
    cv2.imwrite(str(tmp_path / "shot.png"), np.zeros((8, 8), np.uint8))
    with pytest.raises(ImportRefused, match="C-arm bare has no pixel spacing"):
        import_xray(tmp_path / "shot.png", patient_a, carm=bare)


@pytest.mark.parametrize("name", ["RG1_J2KI.dcm", "RG3_J2KR.dcm"])
def test_real_cr_radiographs_import(db, patient_a, name):
    path = shared_path("dicom", "pydicom_data", name)
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    xray = import_xray(path, patient_a)
    assert xray.modality == "CR" and (xray.rows, xray.cols) == (ds.Rows, ds.Columns)
    assert xray.photometric_interpretation == "MONOCHROME1"
    assert xray.pixel_spacing_x_mm is None  # header has none (or zeros): unknown, not 0
    assert "no pixel spacing known" in xray.import_notes
    if "DistanceSourceToDetector" in ds:
        assert xray.distance_source_to_detector_mm == pytest.approx(
            float(ds.DistanceSourceToDetector)
        )


def test_multiframe_description_says_first_frame(db, tmp_path, patient_a):
    frames = np.stack([np.full((5, 6), v, np.uint16) for v in (1, 2)])
    path = tmp_path / "cine.dcm"
    xray_dataset(frames, frames=2, modality="RF").save_as(path, enforce_file_format=True)
    xray = import_xray(path, patient_a)
    assert "first of 2 frames" in xray.description


def test_non_xray_refused_and_nothing_stored(db, patient_a, media_root):
    with pytest.raises(ImportRefused) as err:
        import_xray(shared_path("dicom", "assorted_pydicom", "MR_small.dcm"), patient_a)
    assert err.value.message.startswith("not an X-ray image (modality MR")
    assert XrayImage.objects.count() == 0 and _files(media_root) == []


def test_import_xray_command(db, tmp_path, carm):
    cv2.imwrite(str(tmp_path / "shot.png"), np.zeros((8, 8), np.uint16))
    out, err = io.StringIO(), io.StringIO()
    call_command(
        "import_xray", str(tmp_path / "shot.png"), "--patient", "XR-9", "--carm", carm.name,
        stdout=out, stderr=err,
    )  # fmt: skip
    xray = XrayImage.objects.get(pk=int(out.getvalue().strip()))
    assert xray.patient.mrn == "XR-9" and xray.carm == carm
    with pytest.raises(CommandError) as refusal:
        call_command("import_xray", str(tmp_path / "shot.png"), "--patient", "XR-10")
    assert "choose the C-arm" in str(refusal.value) and "\n" not in str(refusal.value)
    assert not Patient.objects.filter(mrn="XR-10").exists()
    with pytest.raises(CommandError, match="no C-arm named"):
        call_command("import_xray", str(tmp_path / "shot.png"), "--patient", "XR-11", "--carm", "x")


def test_load_xray_image_applies_carm_flags_through_storage(db, tmp_path, patient_a, carm):
    pixels = np.arange(20, dtype=np.uint16).reshape(4, 5)
    path = tmp_path / "xa.dcm"
    xray_dataset(pixels).save_as(path, enforce_file_format=True)
    carm.flip_horizontal = True
    carm.save()
    xray = import_xray(path, patient_a, carm=carm)
    from webapp.records.xray_import import load_xray_image

    np.testing.assert_array_equal(load_xray_image(xray).pixels, pixels[:, ::-1])
    np.testing.assert_array_equal(load_xray_image(xray, reorient=False).pixels, pixels)
