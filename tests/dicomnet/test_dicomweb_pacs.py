"""The same send and pull through DICOMweb (dicomweb-client) against Orthanc's DICOMweb
plugin: results by STOW-RS, search by QIDO-RS, a series by WADO-RS imported as a study."""

from __future__ import annotations

import pytest

from tests.core.factories import isolated_media  # noqa: F401 - activates the fixture
from tests.dicomnet import results_rows as rows
from tests.dicomnet.test_ct_series import _series
from webapp.dicomnet.pacs import WebEndpoint, parse_endpoint
from webapp.dicomnet.pull import PullRefused, pull_series, search_patient
from webapp.dicomnet.send import submit_send
from webapp.jobs.runner import execute_job
from webapp.records.models import CTStudy, Patient


@pytest.fixture
def web_pacs(settings, orthanc_web):
    settings.ORTHOFUSE_PACS = [orthanc_web.dicomweb_url]
    settings.ORTHOFUSE_PACS_RETRY_DELAY_S = 0.05
    return orthanc_web


def test_results_go_by_stow_rs(web_pacs, transactional_db):
    reg = rows.registration(rows.make_patient("WEB-1"))
    job = submit_send(registration_id=reg.pk)
    assert execute_job(job.pk, worker="test") == "succeeded"
    stored = [web_pacs.request("GET", f"/instances/{i}/simplified-tags")
              for i in web_pacs.request("GET", "/instances")]
    assert sorted(t["SOPClassUID"] for t in stored) == [
        "1.2.840.10008.5.1.4.1.1.7", "1.2.840.10008.5.1.4.1.1.88.34"]
    assert {t["PatientID"] for t in stored} == {"WEB-1"}


def test_qido_search_and_wado_pull(web_pacs, tmp_path, db):
    for name, mrn, n, seed in (("a", "WEB-2", 6, 1), ("c", "OTHER", 4, 3)):
        _series(tmp_path / name, n=n, seed=seed, mrn=mrn)
        for path in sorted((tmp_path / name).glob("*.dcm")):
            web_pacs.upload(path)
    patient = Patient.objects.create(mrn="WEB-2")
    [answer] = search_patient(patient)
    assert answer["error"] == "" and len(answer["series"]) == 1
    found = answer["series"][0]
    assert found["instances"] == 6 and found["modality"] == "CT"
    steps = []
    study, created = pull_series(patient, web_pacs.dicomweb_url, found["study_instance_uid"],
                                 found["series_instance_uid"], expected=found["instances"],
                                 report=lambda f, m: steps.append((f, m)))
    assert created and study.shape == [6, 32, 32]
    assert (pytest.approx(0.85), "received 6 of 6 images") in steps
    assert study.spacing_mm == pytest.approx([0.8, 0.7, 2.5])
    with pytest.raises(PullRefused, match="no CT instance there"):
        pull_series(patient, web_pacs.dicomweb_url, found["study_instance_uid"], "1.2.3.999")
    assert CTStudy.objects.count() == 1


def test_dicomweb_urls_parse():
    assert parse_endpoint("https://pacs.example/dicom-web/") == WebEndpoint(
        "https://pacs.example/dicom-web")
    with pytest.raises(ValueError, match="not a DICOMweb URL"):
        parse_endpoint("http://bad host/x")
