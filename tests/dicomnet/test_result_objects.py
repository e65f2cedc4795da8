"""The objects a registration and a plan become: the fused overlay as a Secondary Capture
and the reports as Comprehensive 3D SR, checked by reading them back and by dciodvfy."""

from __future__ import annotations

import cv2
import highdicom as hd
import numpy as np
import pydicom
import pytest
from django.core.files.base import ContentFile

from tests.core.factories import isolated_media, make_study  # noqa: F401 - activates the fixture
from tests.dicomnet import results_rows as rows
from tests.dicomnet.dciodvfy import errors
from tests.dicomnet.sr_walk import numbers, scoords3d
from webapp.dicomnet.results import (
    ResultRefused,
    ct_frame_of_reference,
    overlay_object,
    plan_object,
    registration_object,
)

pytestmark = pytest.mark.django_db


def test_overlay_is_a_secondary_capture_in_the_xray_study(tmp_path):
    reg = rows.registration(rows.make_patient())
    source = pydicom.dcmread(reg.xray.original_file.path)
    sc = overlay_object(reg)
    assert sc.SOPClassUID == "1.2.840.10008.5.1.4.1.1.7"
    assert (sc.PatientID, sc.StudyInstanceUID) == (source.PatientID, source.StudyInstanceUID)
    assert sc.SourceImageSequence[0].ReferencedSOPInstanceUID == reg.xray.sop_instance_uid
    rgb = sc.pixel_array
    assert rgb.shape == (rows.ROWS, rows.COLS, 3) and sc.PhotometricInterpretation == "RGB"
    assert (rgb[rows.EDGE_ROW, 5:60] == [0, 255, 0]).all()
    off = np.delete(rgb, rows.EDGE_ROW, axis=0)
    assert (off[..., 0] == off[..., 1]).all() and (off[..., 1] == off[..., 2]).all()
    assert off.std() > 10  # the X-ray itself, not a blank background
    assert errors(sc, tmp_path) == []


def test_the_same_registration_gives_the_same_instance():
    reg = rows.registration(rows.make_patient())
    assert overlay_object(reg).SOPInstanceUID == overlay_object(reg).SOPInstanceUID
    first = registration_object(reg).SOPInstanceUID
    reg.T_cam_from_world[0][3] += 1.0
    reg.save()
    assert registration_object(reg).SOPInstanceUID != first


def test_png_xray_gets_the_patient_row_and_a_new_study(tmp_path):
    reg = rows.registration(rows.make_patient("PNG-1"), png=True)
    sc = overlay_object(reg)
    assert sc.PatientID == "PNG-1" and str(sc.PatientName) == "Doe^Jane" and sc.PatientSex == "F"
    assert "SourceImageSequence" not in sc
    assert str(sc.StudyDate) == reg.xray.created_at.strftime("%Y%m%d")
    assert sc.StudyID.startswith("OF-X")
    sr = registration_object(reg, sc)
    assert sr.StudyInstanceUID == sc.StudyInstanceUID and sr.PatientID == "PNG-1"
    assert errors(sc, tmp_path) == [] and errors(sr, tmp_path) == []
    with pytest.raises(ResultRefused, match="needs its overlay"):
        registration_object(reg)


def test_registration_report_carries_pose_errors_and_landmarks(tmp_path):
    reg = rows.registration(rows.make_patient())
    sr = registration_object(reg)
    assert sr.SOPClassUID == "1.2.840.10008.5.1.4.1.1.88.34"  # Comprehensive 3D SR
    assert sr.PatientID == "SEND-1" and sr.CompletionFlag == "COMPLETE"
    found = numbers(sr)
    assert found["Pose translation x (camera from CT)"] == pytest.approx(5.0)
    assert found["Pose translation z (camera from CT)"] == pytest.approx(800.0)
    assert found["Pose rotation vector z (camera from CT)"] == pytest.approx(30.0)
    assert found["Registration image similarity"] == pytest.approx(0.87)
    assert found["True mean target registration error"] == pytest.approx(0.42)
    assert found["Landmark projected error"] == pytest.approx(0.8)
    [(kind, data, frame)] = scoords3d(sr)
    assert kind == "POINT" and data == [1.0, 2.0, 3.0]
    assert frame == ct_frame_of_reference(reg.study)
    evidence = sr.CurrentRequestedProcedureEvidenceSequence[0]
    assert evidence.StudyInstanceUID == sr.StudyInstanceUID
    refs = evidence.ReferencedSeriesSequence[0].ReferencedSOPSequence
    assert refs[0].ReferencedSOPInstanceUID == reg.xray.sop_instance_uid
    again = hd.sr.Comprehensive3DSR.from_dataset(sr)  # highdicom reads its own output back
    assert again.SOPInstanceUID == sr.SOPInstanceUID
    assert errors(sr, tmp_path) == []


def test_plan_report_has_trajectories_as_polylines_in_the_ct_frame(tmp_path):
    patient = rows.make_patient()
    study = make_study(patient)
    study.provenance["frame_of_reference_uid"] = "1.2.826.0.1.3680043.99.7"
    study.save()
    version = rows.plan_version(patient, study)
    sr = plan_object(version)
    [(kind, data, frame)] = scoords3d(sr)  # the incomplete trajectory is left out
    assert kind == "POLYLINE" and data == [10.0, 20.0, 30.0, 50.0, 25.0, 28.0]
    assert frame == "1.2.826.0.1.3680043.99.7"
    found = numbers(sr)
    assert found["Diameter"] == pytest.approx(7.3) and found["Length"] == pytest.approx(45.0)
    assert found["Inclination"] == pytest.approx(12.0)
    first_view = pydicom.dcmread(version.plan.xray1.original_file.path)
    assert sr.StudyInstanceUID == first_view.StudyInstanceUID
    assert errors(sr, tmp_path) == []


def test_refusals_are_one_line():
    patient = rows.make_patient()
    reg = rows.registration(patient)
    reg.status = "failed"
    with pytest.raises(ResultRefused, match="did not succeed"):
        overlay_object(reg)
    reg.status, reg.review_status = "ok", "rejected"
    with pytest.raises(ResultRefused, match="rejected in review"):
        registration_object(reg)
    reg.review_status = "accepted"
    small = np.zeros((10, 10, 3), np.uint8)
    reg.overlay_file.save("overlay.png", ContentFile(cv2.imencode(".png", small)[1].tobytes()))
    with pytest.raises(ResultRefused, match="does not match the X-ray"):
        overlay_object(reg)
    version = rows.plan_version(patient)
    version.snapshot["world_frame"] = "carm"
    with pytest.raises(ResultRefused, match="not in the CT's frame"):
        plan_object(version)
