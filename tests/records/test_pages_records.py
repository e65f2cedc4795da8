"""Record pages: patient list and search, creating patients, the patient page (studies,
X-rays, plans, jobs), study detail metadata, C-arm pages by role, navigation and login."""

from __future__ import annotations

import pytest
from django.urls import reverse

from tests.core.factories import isolated_media, make_carm, make_study, make_xray  # noqa: F401
from webapp.records.models import CArm, Patient


@pytest.mark.django_db
def test_patient_list_search_by_mrn_and_name(client, surgeon_a, team_a, patient_a):
    other = Patient.objects.create(mrn="A-0002", family_name="Gamma", given_name="Gus")
    other.care_teams.add(team_a)
    client.force_login(surgeon_a)
    url = reverse("records:patient-list")
    body = client.get(url).content.decode()
    assert "A-0001" in body and "A-0002" in body
    for query, present, absent in (
        ("gamma", "A-0002", "A-0001"),
        ("A-0001", "A-0001", "A-0002"),
        ("ann alpha", "A-0001", "A-0002"),
    ):
        body = client.get(url, {"q": query}).content.decode()
        assert present in body and absent not in body, query
    assert "No patient matches" in client.get(url, {"q": "zzz"}).content.decode()


@pytest.mark.django_db
def test_surgeon_creates_patient_in_own_team(client, surgeon_a, team_a, team_b):
    client.force_login(surgeon_a)
    url = reverse("records:patient-create")
    page = client.get(url).content.decode()
    assert "Trauma A" in page and "Spine B" not in page  # only own teams offered
    response = client.post(
        url,
        {
            "mrn": " N-1 ",
            "family_name": "Nu",
            "sex": "F",
            "care_teams": [team_a.pk],
            "birth_date": "1970-02-03",
        },
    )
    assert response.status_code == 302
    patient = Patient.objects.get(mrn="N-1")
    assert list(patient.care_teams.all()) == [team_a]
    assert response["Location"] == reverse("records:patient-detail", kwargs={"pk": patient.pk})

    refused = client.post(url, {"mrn": "N-2", "sex": "U", "care_teams": [team_b.pk]})
    assert refused.status_code == 400 and not Patient.objects.filter(mrn="N-2").exists()
    duplicate = client.post(url, {"mrn": "N-1", "sex": "U", "care_teams": [team_a.pk]})
    assert duplicate.status_code == 400 and b"already exists" in duplicate.content
    slash = client.post(url, {"mrn": "a/b", "sex": "U", "care_teams": [team_a.pk]})
    assert slash.status_code == 400


@pytest.mark.django_db
def test_reviewer_cannot_create_patient(client, make_user, team_a):
    client.force_login(make_user("rev", "Reviewer", team=team_a))
    assert client.get(reverse("records:patient-create")).status_code == 403
    assert b"New patient" not in client.get(reverse("records:patient-list")).content


@pytest.mark.django_db
def test_patient_page_lists_studies_xrays_plans_and_jobs(client, surgeon_a, patient_a):
    from webapp.jobs.models import Job

    study = make_study(patient_a, description="Pelvis CT")
    xray = make_xray(patient_a, description="AP pelvis")
    job = Job.objects.create(
        kind="train_model", patient=patient_a, progress=0.25, created_by=surgeon_a
    )
    Job.objects.create(kind="other_patients_job")
    client.force_login(surgeon_a)
    body = client.get(
        reverse("records:patient-detail", kwargs={"pk": patient_a.pk})
    ).content.decode()
    assert "Pelvis CT" in body and reverse("records:study-detail", kwargs={"pk": study.pk}) in body
    assert "AP pelvis" in body and reverse("records:xray-detail", kwargs={"pk": xray.pk}) in body
    assert f"train_model #{job.pk}" in body and "other_patients_job" not in body
    assert 'value="0.250"' in body
    assert 'id="plans"' in body
    assert "multiple" in body and 'name="deidentify"' in body  # CT upload form


@pytest.mark.django_db
def test_study_detail_shows_metadata_and_viewer(client, surgeon_a, patient_a):
    study = make_study(patient_a, shape=(3, 4, 5), spacing=(0.75, 0.8, 2.5))
    client.force_login(surgeon_a)
    body = client.get(reverse("records:study-detail", kwargs={"pk": study.pk})).content.decode()
    assert "3 × 4 × 5" in body
    assert "0.7500 × 0.8000 × 2.5000" in body
    assert f"{study.hu_min:.0f} … {study.hu_max:.0f} HU" in body
    assert "-20.0000" in body  # affine translation row
    assert "synthetic test volume" in body  # provenance
    assert 'id="viewer"' in body


@pytest.mark.django_db
def test_study_download_is_the_stored_volume(client, surgeon_a, patient_a):
    import io

    import numpy as np

    study = make_study(patient_a, shape=(2, 3, 4), seed=5)
    client.force_login(surgeon_a)
    response = client.get(reverse("records:study-download", kwargs={"pk": study.pk}))
    volume = np.load(io.BytesIO(b"".join(response.streaming_content)))
    assert volume.shape == (2, 3, 4) and volume.dtype == np.int16
    assert float(volume.min()) == study.hu_min


@pytest.mark.django_db
def test_carm_pages_by_role(client, make_user, surgeon_a):
    carm = make_carm("OEC 9900", detector_type=CArm.DetectorType.IMAGE_INTENSIFIER)
    client.force_login(surgeon_a)
    assert b"OEC 9900" in client.get(reverse("records:carm-list")).content
    detail = client.get(reverse("records:carm-detail", kwargs={"pk": carm.pk}))
    assert detail.status_code == 200 and b"needs dewarping" in detail.content
    assert b"Edit" not in detail.content
    assert client.get(reverse("records:carm-create")).status_code == 403
    assert client.post(reverse("records:carm-create"), {"name": "X"}).status_code == 403

    client.force_login(make_user("cal", "CalibrationAdmin"))
    data = {
        "name": "Cios Spin",
        "detector_type": "flat_panel",
        "pixel_spacing_x_mm": "0.15",
        "pixel_spacing_y_mm": "0.15",
        "source_to_detector_mm": "1164",
        "rotate_deg": "0",
    }
    response = client.post(reverse("records:carm-create"), data)
    assert response.status_code == 302
    created = CArm.objects.get(name="Cios Spin")
    assert created.pixel_spacing_x_mm == pytest.approx(0.15)
    bad = client.post(
        reverse("records:carm-edit", kwargs={"pk": created.pk}),
        {**data, "pixel_spacing_x_mm": "-1"},
    )
    assert bad.status_code == 400 and b"positive" in bad.content
    created.refresh_from_db()
    assert created.pixel_spacing_x_mm == pytest.approx(0.15)


@pytest.mark.django_db
def test_navigation_links_by_role(client, make_user, surgeon_a):
    client.force_login(surgeon_a)
    body = client.get(reverse("records:patient-list")).content.decode()
    assert reverse("records:patient-list") in body and reverse("records:carm-list") in body
    assert reverse("jobs:job-list") in body
    assert reverse("admin:index") not in body
    client.force_login(make_user("root", superuser=True))
    assert reverse("admin:index") in client.get(reverse("records:patient-list")).content.decode()


@pytest.mark.django_db
def test_login_page_and_logout(client, surgeon_a):
    page = client.get(reverse("login"))
    assert page.status_code == 200 and b'name="password"' in page.content
    bad = client.post(reverse("login"), {"username": "surgeon_a", "password": "nope"})
    assert bad.status_code == 200 and b"did not match" in bad.content
    good = client.post(reverse("login"), {"username": "surgeon_a", "password": "pw-surgeon_a-123"})
    assert good.status_code == 302 and good["Location"] == reverse("records:patient-list")
    assert client.post(reverse("logout")).status_code == 302
    assert client.get(reverse("records:patient-list")).status_code == 302


def test_provenance_rows_are_readable():
    from webapp.records.imaging_views import provenance_rows

    rows = dict(
        provenance_rows(
            {
                "software": {"pydicom": "3.0"},
                "transfer_syntaxes": ["1.2", "1.3"],
                "resampled": False,
                "n": 3,
            }
        )
    )
    assert rows == {
        "software": "pydicom=3.0",
        "transfer syntaxes": "1.2, 1.3",
        "resampled": "no",
        "n": "3",
    }
    assert provenance_rows(None) == []


@pytest.mark.django_db
def test_carm_page_lists_calibration_profiles(client, surgeon_a):
    from webapp.calibration.models import CalibrationProfile

    carm = make_carm("Cios")
    CalibrationProfile.objects.create(
        carm=carm, version=2, status="active", rms_px=0.4321, beads_used=37
    )
    client.force_login(surgeon_a)
    body = client.get(reverse("records:carm-detail", kwargs={"pk": carm.pk})).content.decode()
    assert "v2" in body and "0.43" in body and "37" in body
    assert "New calibration" not in body  # surgeons view only


@pytest.mark.django_db
def test_patient_page_links_plans_and_xray_page_offers_dewarp(
    client, surgeon_a, make_user, team_a, patient_a
):
    from webapp.planning.models import Plan

    carm = make_carm("II", detector_type=CArm.DetectorType.IMAGE_INTENSIFIER)
    xray = make_xray(patient_a, carm=carm)
    plan = Plan.objects.create(patient=patient_a, name="Left SI screw", xray1=xray, xray2=xray)
    client.force_login(surgeon_a)
    body = client.get(
        reverse("records:patient-detail", kwargs={"pk": patient_a.pk})
    ).content.decode()
    assert "Left SI screw" in body and reverse("planning:plan", kwargs={"pk": plan.pk}) in body
    dewarp_url = reverse("calibration:xray-dewarp", kwargs={"pk": xray.pk})
    assert (
        dewarp_url
        in client.get(reverse("records:xray-detail", kwargs={"pk": xray.pk})).content.decode()
    )
    client.force_login(make_user("rev", "Reviewer", team=team_a))
    assert (
        dewarp_url
        not in client.get(reverse("records:xray-detail", kwargs={"pk": xray.pk})).content.decode()
    )
