"""Creating a patient with an MRN that exists: the role is checked first (a user who may
not create patients learns nothing), a surgeon gets the same neutral words whether the
patient is in their team or another, and every such attempt is audited."""

from __future__ import annotations

import pytest
from django.urls import reverse

from webapp.core.models import AuditEvent
from webapp.records.forms import MRN_TAKEN
from webapp.records.models import Patient


@pytest.fixture
def other_teams_patient(team_b):
    patient = Patient.objects.create(mrn="HIDDEN-7", family_name="Other", sex="U")
    patient.care_teams.add(team_b)
    return patient


def test_page_answers_the_same_for_own_and_other_teams_patients(
    client, surgeon_a, team_a, patient_a, other_teams_patient
):
    client.force_login(surgeon_a)
    url = reverse("records:patient-create")
    answers = []
    for mrn in (patient_a.mrn, other_teams_patient.mrn):
        r = client.post(url, {"mrn": mrn, "sex": "U", "care_teams": [team_a.pk]})
        assert r.status_code == 400
        answers.append(MRN_TAKEN in r.content.decode().replace("&#x27;", "'"))
    assert answers == [True, True]
    assert AuditEvent.objects.filter(detail__contains="MRN is already registered").count() == 2


def test_api_checks_the_role_before_the_mrn(client, make_user, team_a, other_teams_patient):
    reviewer = make_user("reviewer_x", "Reviewer", team=team_a)
    client.force_login(reviewer)
    url = "/api/patients/"
    taken = client.post(url, {"mrn": other_teams_patient.mrn, "sex": "U"}, content_type="application/json")
    free = client.post(url, {"mrn": "FREE-1", "sex": "U"}, content_type="application/json")
    assert taken.status_code == free.status_code == 403


def test_api_gives_surgeons_the_neutral_answer(client, surgeon_a, team_a, other_teams_patient):
    client.force_login(surgeon_a)
    r = client.post(
        "/api/patients/",
        {"mrn": other_teams_patient.mrn, "sex": "U", "care_teams": [team_a.pk]},
        content_type="application/json",
    )
    assert r.status_code == 400 and r.json() == {"mrn": [MRN_TAKEN]}
    assert AuditEvent.objects.filter(detail__contains="MRN already registered").exists()
