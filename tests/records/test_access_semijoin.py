"""Care-team scoping returns each visible row once, whatever the number of shared teams, and
hides rows of patients outside the user's teams (the rule is a semi-join, not a join)."""

from __future__ import annotations

import pytest

from tests.core.factories import isolated_media, make_xray  # noqa: F401


@pytest.fixture
def shared_patient(patient_a, team_a, team_b, surgeon_a):
    """Patient A in both teams, and the surgeon in both too."""
    patient_a.care_teams.add(team_b)
    team_b.members.add(surgeon_a)
    return patient_a


def test_a_patient_of_two_shared_teams_is_listed_once(shared_patient, patient_b, surgeon_a):
    from webapp.records.access import visible_patients

    team_b_patient_visible = list(visible_patients(surgeon_a).order_by("mrn"))
    assert [p.mrn for p in team_b_patient_visible] == ["A-0001", "B-0001"]


def test_scoped_rows_are_not_repeated_per_team(shared_patient, patient_b, surgeon_a, make_user):
    from webapp.records.access import get_visible_or_404, scope
    from webapp.records.models import CareTeam, XrayImage

    team_c = CareTeam.objects.create(name="Hand C")
    patient_b.care_teams.add(team_c)
    surgeon_c = make_user("surgeon_c", "Surgeon", team=team_c)
    mine = make_xray(shared_patient)
    theirs = make_xray(patient_b, seed=1)
    rows = list(scope(XrayImage.objects.all(), surgeon_a))
    assert sorted(x.pk for x in rows) == sorted([mine.pk, theirs.pk])
    assert [x.pk for x in scope(XrayImage.objects.all(), surgeon_c)] == [theirs.pk]
    assert get_visible_or_404(XrayImage, surgeon_a, pk=mine.pk) == mine


def test_a_user_in_no_team_sees_nothing(patient_a, make_user):
    from django.http import Http404

    from webapp.records.access import get_visible_or_404, visible_patients
    from webapp.records.models import Patient

    outsider = make_user("outsider", "Surgeon")
    assert not visible_patients(outsider).exists()
    with pytest.raises(Http404):
        get_visible_or_404(Patient, outsider, pk=patient_a.pk)
