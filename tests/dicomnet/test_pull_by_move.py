"""Pulling by C-MOVE: Orthanc sends the series to our own listener, which files it as the
patient's CT study; the pull waits for that study. A PACS that does not know our AE title
is a clear refusal."""

from __future__ import annotations

import pytest

from tests.dicomnet.test_ct_series import _series
from webapp.dicomnet.pull import PullRefused, pull_series
from webapp.records.models import CTStudy, Patient


@pytest.fixture
def moving(settings, orthanc, make_node, tmp_path):
    node = make_node()
    settings.ORTHOFUSE_PACS = [f"{orthanc.aet}@127.0.0.1:{orthanc.dicom_port}"]
    settings.ORTHOFUSE_PACS_RETRIEVE = "move"
    settings.ORTHOFUSE_DICOM_AE_TITLE = node.config.ae_title
    datasets, _ = _series(tmp_path / "ct", n=5, seed=8, mrn="MOVE-1")
    for path in sorted((tmp_path / "ct").glob("*.dcm")):
        orthanc.upload(path)
    return orthanc, node, datasets[0]


def test_c_move_to_our_listener_becomes_the_patients_study(moving):
    orthanc, node, first = moving
    orthanc.add_modality("orthofuse", node.config.ae_title, node.port)
    patient = Patient.objects.create(mrn="MOVE-1")
    steps = []
    study, created = pull_series(patient, f"{orthanc.aet}@127.0.0.1:{orthanc.dicom_port}",
                                 first.StudyInstanceUID, first.SeriesInstanceUID,
                                 report=lambda f, m: steps.append(m))
    assert created and study.patient == patient and study.shape == [5, 32, 32]
    assert any("5 images sent to our listener" in m for m in steps)
    assert CTStudy.objects.count() == 1


def test_pacs_that_does_not_know_us_is_refused(moving):
    orthanc, _node, first = moving
    patient = Patient.objects.create(mrn="MOVE-1")
    with pytest.raises(PullRefused, match="know our AE title .ORTHOFUSE."):
        pull_series(patient, f"{orthanc.aet}@127.0.0.1:{orthanc.dicom_port}",
                    first.StudyInstanceUID, first.SeriesInstanceUID)
    assert CTStudy.objects.count() == 0


def test_unknown_retrieve_mode_is_named(settings, db):
    settings.ORTHOFUSE_PACS = ["PACS@127.0.0.1:104"]
    settings.ORTHOFUSE_PACS_RETRIEVE = "teleport"
    with pytest.raises(PullRefused, match="expected 'get' or 'move'"):
        pull_series(Patient.objects.create(mrn="M-2"), "PACS@127.0.0.1:104", "1.2", "1.3")
