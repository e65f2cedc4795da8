"""Shared fixtures: users in roles, care teams, patients, and the shared public data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Fixtures shared by every area: Playwright/Chromium pages on the live server.
pytest_plugins = ["tests.fixtures_browser"]

SHARED_DATA = Path(
    os.environ.get("ORTHOFUSE_SHARED_DATA")
    or Path(__file__).resolve().parent.parent.parent / "shared" / "data"
)


def shared_path(*parts: str) -> Path:
    """A path under ../shared/data; the test is skipped cleanly when it is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared data not available: {path}")
    return path


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.exists():
        pytest.skip(f"shared data not available: {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture
def make_user(db):
    from django.contrib.auth.models import Group, User

    def make(username: str, role: str | None = None, *, superuser: bool = False, team=None) -> User:
        user = User.objects.create_user(username=username, password="pw-" + username + "-123")
        if superuser:
            user.is_superuser = True
            user.is_staff = True
            user.save()
        if role:
            group, _ = Group.objects.get_or_create(name=role)
            user.groups.add(group)
        if team is not None:
            team.members.add(user)
        return user

    return make


@pytest.fixture
def team_a(db):
    from webapp.records.models import CareTeam

    return CareTeam.objects.create(name="Trauma A")


@pytest.fixture
def team_b(db):
    from webapp.records.models import CareTeam

    return CareTeam.objects.create(name="Spine B")


@pytest.fixture
def surgeon_a(make_user, team_a):
    return make_user("surgeon_a", "Surgeon", team=team_a)


@pytest.fixture
def surgeon_b(make_user, team_b):
    return make_user("surgeon_b", "Surgeon", team=team_b)


@pytest.fixture
def patient_a(team_a):
    from webapp.records.models import Patient

    patient = Patient.objects.create(mrn="A-0001", family_name="Alpha", given_name="Ann", sex="F")
    patient.care_teams.add(team_a)
    return patient


@pytest.fixture
def patient_b(team_b):
    from webapp.records.models import Patient

    patient = Patient.objects.create(mrn="B-0001", family_name="Beta", given_name="Bob", sex="M")
    patient.care_teams.add(team_b)
    return patient
