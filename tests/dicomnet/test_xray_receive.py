"""X-ray objects sent by C-STORE become X-ray images at once, filed by PatientID."""

from __future__ import annotations

import numpy as np
import pytest

from tests.dicomio.synth import xray_dataset
from tests.dicomnet.conftest import CARE_TEAM
from tests.dicomnet.scu import store
from webapp.dicomnet.models import DicomDevice
from webapp.records.models import CArm, Patient, XrayImage


def _shot(seed: int, *, modality: str = "XA", mrn: str = "MRN-100", frames: int = 1, **kw):
    rng = np.random.default_rng(seed)
    shape = (frames, 24, 32) if frames > 1 else (24, 32)
    ds = xray_dataset(rng.integers(0, 4000, shape).astype(np.uint16), modality=modality,
                      frames=frames, **kw)
    ds.PatientID = mrn
    ds.PatientName = "Tester^Tina"
    ds.PatientSex = "F"
    return ds


@pytest.mark.parametrize("modality", ["XA", "RF"])
def test_xray_of_a_new_mrn_creates_the_patient_in_the_configured_team(node, modality):
    ds = _shot(1, modality=modality)
    ds.StationName = "OR3-CARM"
    assert store(node.port, [ds]) == [(0x0000, "")]
    patient = Patient.objects.get(mrn="MRN-100")
    assert (patient.family_name, patient.given_name, patient.sex) == ("Tester", "Tina", "F")
    assert [t.name for t in patient.care_teams.all()] == [CARE_TEAM]
    xray = XrayImage.objects.get()
    assert xray.patient == patient and xray.modality == modality
    assert (xray.rows, xray.cols) == (24, 32)
    assert xray.sop_instance_uid == ds.SOPInstanceUID
    assert xray.distance_source_to_detector_mm == pytest.approx(1000.0)
    assert (xray.pixel_spacing_x_mm, xray.pixel_spacing_y_mm) == pytest.approx((0.3, 0.2))
    assert xray.primary_angle_deg == pytest.approx(10.0)


def test_xray_of_a_known_mrn_goes_to_that_patient(node, patient_a):
    ds = _shot(2, modality="DX", mrn=patient_a.mrn)
    assert store(node.port, [ds])[0][0] == 0x0000
    assert XrayImage.objects.get().patient == patient_a
    assert list(patient_a.care_teams.values_list("name", flat=True)) == ["Trauma A"]
    assert Patient.objects.count() == 1


def test_unknown_device_is_created_flagged_uncalibrated_and_found_again(node):
    first, second = _shot(3), _shot(4)
    for ds in (first, second):
        ds.StationName = "OR3-CARM"
        ds.DeviceSerialNumber = "SN-778"
        ds.Manufacturer = "Acme"
    assert [s for s, _ in store(node.port, [first, second])] == [0, 0]
    device = DicomDevice.objects.get()
    assert device.needs_calibration and device.auto_created
    assert device.carm.detector_type == CArm.DetectorType.IMAGE_INTENSIFIER
    assert "OR3-CARM" in device.carm.name
    assert {x.carm_id for x in XrayImage.objects.all()} == {device.carm_id}


def test_the_uncalibrated_flag_clears_once_the_carm_has_an_active_profile(node):
    from webapp.calibration.models import CalibrationProfile

    first, second = _shot(11), _shot(12)
    for ds in (first, second):
        ds.DeviceSerialNumber = "SN-900"
    store(node.port, [first])
    device = DicomDevice.objects.get()
    assert device.needs_calibration
    CalibrationProfile.objects.create(carm=device.carm, version=1, status="active")
    store(node.port, [second])
    device.refresh_from_db()
    assert not device.needs_calibration


def test_a_carm_named_like_the_station_is_used(node):
    carm = CArm.objects.create(name="OR1", detector_type="flat_panel")
    ds = _shot(5)
    ds.StationName = "OR1"
    assert store(node.port, [ds])[0][0] == 0
    assert XrayImage.objects.get().carm == carm
    assert not DicomDevice.objects.get().auto_created


def test_multiframe_cine_keeps_the_last_frame_by_default(node):
    ds = _shot(6, frames=3)
    pixels = ds.pixel_array
    assert store(node.port, [ds])[0][0] == 0
    xray = XrayImage.objects.get()
    from webapp.records.xray_import import load_xray_image

    np.testing.assert_array_equal(load_xray_image(xray).pixels, pixels[2].astype(np.float32))
    assert "frame 3 of 3" in xray.description


def test_multiframe_all_frames_by_setting(make_node):
    node = make_node(multiframe="all")
    ds = _shot(7, frames=3)
    assert store(node.port, [ds])[0][0] == 0
    assert sorted(x.description[:10] for x in XrayImage.objects.all()) == [
        "frame 1 of", "frame 2 of", "frame 3 of"]


def test_a_resent_instance_is_not_stored_twice(node):
    ds = _shot(8)
    assert [s for s, _ in store(node.port, [ds, ds])] == [0, 0]
    assert XrayImage.objects.count() == 1
