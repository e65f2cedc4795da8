"""Query/retrieve against a real PACS (Orthanc): search a patient's CT series by C-FIND,
pull one by C-GET as a job, import it like an upload; refusals leave nothing behind."""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest

from tests.core.factories import isolated_media  # noqa: F401 - activates the fixture
from tests.dicomio.synth import xray_dataset
from tests.dicomnet.test_ct_series import _series
from webapp.dicomnet.pull import PullRefused, pull_series, search_patient, submit_pull
from webapp.jobs.models import Job
from webapp.jobs.runner import execute_job
from webapp.records.models import CTStudy, Patient


@pytest.fixture
def pacs(settings, orthanc, tmp_path):
    """Orthanc holding two CT series of PULL-1, one CT of someone else and an X-ray of PULL-1,
    and knowing our AE title (find/get allowed)."""
    settings.ORTHOFUSE_PACS = [f"{orthanc.aet}@127.0.0.1:{orthanc.dicom_port}"]
    orthanc.add_modality("orthofuse", "ORTHOFUSE", 11112)
    series = {}
    for name, mrn, n, seed in (("a", "PULL-1", 6, 1), ("b", "PULL-1", 5, 2), ("c", "OTHER", 4, 3)):
        datasets, _ = _series(tmp_path / name, n=n, seed=seed, mrn=mrn)
        for path in sorted((tmp_path / name).glob("*.dcm")):
            orthanc.upload(path)
        series[name] = datasets[0]
    xray = xray_dataset(pydicom.dcmread(next((tmp_path / "a").glob("*.dcm"))).pixel_array
                        .astype("uint16").clip(0, 4000))
    xray.PatientID = "PULL-1"
    xray.save_as(tmp_path / "x.dcm", enforce_file_format=True)
    orthanc.upload(tmp_path / "x.dcm")
    return settings.ORTHOFUSE_PACS[0], series


def test_search_finds_only_the_patients_ct_series(pacs, db):
    endpoint, series = pacs
    patient = Patient.objects.create(mrn="PULL-1")
    [answer] = search_patient(patient)
    assert answer["endpoint"] == endpoint and answer["error"] == ""
    found = {s["series_instance_uid"]: s for s in answer["series"]}
    assert set(found) == {series["a"].SeriesInstanceUID, series["b"].SeriesInstanceUID}
    assert found[series["a"].SeriesInstanceUID]["instances"] == 6
    assert found[series["a"].SeriesInstanceUID]["modality"] == "CT"


def test_pull_job_imports_the_series_once(pacs, transactional_db):
    endpoint, series = pacs
    patient = Patient.objects.create(mrn="PULL-1")
    chosen = series["a"]
    job = submit_pull(patient, endpoint, chosen.StudyInstanceUID, chosen.SeriesInstanceUID)
    assert execute_job(job.pk, worker="test") == "succeeded"
    job.refresh_from_db()
    study = CTStudy.objects.get(pk=job.result["study_id"])
    assert job.result["created"] is True and job.progress == pytest.approx(1.0)
    assert study.patient == patient and study.shape == [6, 32, 32]
    assert study.series_instance_uid == chosen.SeriesInstanceUID
    assert study.spacing_mm == pytest.approx([0.8, 0.7, 2.5])
    again = submit_pull(patient, endpoint, chosen.StudyInstanceUID, chosen.SeriesInstanceUID)
    assert execute_job(again.pk, worker="test") == "succeeded"
    assert Job.objects.get(pk=again.pk).result["created"] is False
    assert CTStudy.objects.count() == 1


def test_a_series_of_another_patient_is_refused_and_nothing_kept(pacs, db, settings):
    endpoint, series = pacs
    patient = Patient.objects.create(mrn="PULL-1")
    other = series["c"]
    with pytest.raises(PullRefused, match="belongs to patient ID 'OTHER'"):
        pull_series(patient, endpoint, other.StudyInstanceUID, other.SeriesInstanceUID)
    assert CTStudy.objects.count() == 0
    assert list(Path(settings.ORTHOFUSE_STAGING_DIR).iterdir()) == []


def test_unknown_series_and_unconfigured_pacs_are_clear(pacs, db):
    endpoint, series = pacs
    patient = Patient.objects.create(mrn="PULL-1")
    with pytest.raises(PullRefused, match="has no CT instance there|C-GET ended"):
        pull_series(patient, endpoint, series["a"].StudyInstanceUID, "1.2.3.999")
    with pytest.raises(PullRefused, match="not a configured PACS"):
        pull_series(patient, "EVIL@10.0.0.1:104", "1.2.3", "1.2.4")
    with pytest.raises(PullRefused, match="not a valid DICOM UID"):
        pull_series(patient, endpoint, "1.2.3", "not a uid")


def test_series_too_large_is_refused(pacs, db, settings):
    endpoint, series = pacs
    settings.ORTHOFUSE_MAX_UPLOAD_BYTES = 4000  # smaller than two slices
    patient = Patient.objects.create(mrn="PULL-1")
    chosen = series["b"]
    with pytest.raises(PullRefused, match="larger than the limit"):
        pull_series(patient, endpoint, chosen.StudyInstanceUID, chosen.SeriesInstanceUID)
    assert CTStudy.objects.count() == 0


def test_search_reports_an_unreachable_pacs(settings, db):
    settings.ORTHOFUSE_PACS = ["NOBODY@127.0.0.1:1"]
    [answer] = search_patient(Patient.objects.create(mrn="PULL-2"))
    assert answer["series"] == [] and "association refused" in answer["error"]
