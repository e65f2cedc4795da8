"""The PACS pages: a patient's CT series listed from Orthanc with a Pull button that starts
the import job; Send buttons for a registration and a plan version; access rules."""

from __future__ import annotations

import pytest
from django.contrib.messages import get_messages

from tests.core.factories import isolated_media  # noqa: F401 - activates the fixture
from tests.dicomnet import results_rows as rows
from tests.dicomnet.test_ct_series import _series
from webapp.jobs.models import Job
from webapp.jobs.runner import execute_job
from webapp.records.models import CTStudy

pytestmark = pytest.mark.urls("tests.dicomnet.urls_with_dicom")


@pytest.fixture
def pacs_with_ct(settings, orthanc, tmp_path):
    settings.ORTHOFUSE_PACS = [f"{orthanc.aet}@127.0.0.1:{orthanc.dicom_port}"]
    orthanc.add_modality("orthofuse", "ORTHOFUSE", 11112)
    datasets, _ = _series(tmp_path / "ct", n=5, seed=4, mrn="A-0001")
    for path in sorted((tmp_path / "ct").glob("*.dcm")):
        orthanc.upload(path)
    return settings.ORTHOFUSE_PACS[0], datasets[0]


def test_page_lists_series_and_pull_starts_the_import(client, surgeon_a, patient_a,
                                                      pacs_with_ct, transactional_db):
    endpoint, first = pacs_with_ct
    client.force_login(surgeon_a)
    page = client.get(f"/dicom/patients/{patient_a.pk}/pacs/")
    assert page.status_code == 200
    html = page.content.decode()
    assert first.SeriesInstanceUID in html and "Pull and import" in html and endpoint in html
    answer = client.post(f"/dicom/patients/{patient_a.pk}/pacs/pull/", {
        "endpoint": endpoint, "study_uid": first.StudyInstanceUID,
        "series_uid": first.SeriesInstanceUID, "instances": "5",
    })
    job = Job.objects.get(kind="pull_ct_series")
    assert job.params["expected"] == 5 and 'name="instances" value="5"' in html
    assert answer.status_code == 302 and answer.url == f"/jobs/{job.pk}/"
    assert execute_job(job.pk, worker="test") == "succeeded"
    assert CTStudy.objects.get().patient == patient_a


def test_other_team_gets_404_and_bad_pull_is_one_line(client, surgeon_a, surgeon_b, patient_a,
                                                      settings, db):
    settings.ORTHOFUSE_PACS = ["PACS@127.0.0.1:1"]
    client.force_login(surgeon_b)
    assert client.get(f"/dicom/patients/{patient_a.pk}/pacs/").status_code == 404
    client.force_login(surgeon_a)
    answer = client.post(f"/dicom/patients/{patient_a.pk}/pacs/pull/",
                         {"endpoint": "EVIL@10.0.0.9:104", "study_uid": "1.2", "series_uid": "1.3"})
    assert answer.status_code == 302 and Job.objects.count() == 0
    [message] = [str(m) for m in get_messages(answer.wsgi_request)]
    assert "not a configured PACS" in message


def test_send_buttons_start_jobs_for_visible_results_only(client, surgeon_a, surgeon_b,
                                                          make_user, patient_a, settings, db):
    settings.ORTHOFUSE_PACS = ["PACS@127.0.0.1:104"]
    reg = rows.registration(patient_a)
    version = rows.plan_version(patient_a)
    client.force_login(surgeon_b)
    assert client.post(f"/dicom/registrations/{reg.pk}/send/").status_code == 404
    client.force_login(make_user("viewer", team=patient_a.care_teams.first()))
    assert client.post(f"/dicom/registrations/{reg.pk}/send/").status_code == 403
    client.force_login(surgeon_a)
    answer = client.post(f"/dicom/registrations/{reg.pk}/send/")
    job = Job.objects.get(kind="send_to_pacs")
    assert answer.url == f"/jobs/{job.pk}/" and job.params == {"registration_id": reg.pk}
    client.post(f"/dicom/plan-versions/{version.pk}/send/")
    assert Job.objects.filter(kind="send_to_pacs", params={"plan_version_id": version.pk}).exists()
    reg.status = "failed"
    reg.save()
    answer = client.post(f"/dicom/registrations/{reg.pk}/send/", HTTP_REFERER="https://evil.example/")
    assert answer.url == "/"
    [message] = [str(m) for m in get_messages(answer.wsgi_request)]
    assert "did not succeed" in message
