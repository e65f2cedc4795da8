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


@pytest.fixture(autouse=True)
def second_factor_verified_logins(request, monkeypatch):
    """Test helper: sessions opened by ``Client.force_login`` and ``Client.login`` for users
    who must present a second factor (staff, superusers, calibration admins) are verified
    with a real confirmed TOTP device, exactly as after a correct code on the verification
    page (django-otp's session key). Production code has no bypass: this only shortens
    tests that are about something else. Tests of the second factor itself request the
    ``real_second_factor`` fixture, which turns this helper off."""
    if "real_second_factor" in request.fixturenames:
        yield
        return
    from django.test import Client

    original_force_login, original_login = Client.force_login, Client.login

    def verify(client: Client) -> None:
        from django.contrib.auth import SESSION_KEY, get_user_model
        from django_otp import DEVICE_ID_SESSION_KEY
        from django_otp.plugins.otp_totp.models import TOTPDevice

        from webapp.core.second_factor import must_enrol

        session = client.session
        user = get_user_model().objects.filter(pk=session.get(SESSION_KEY)).first()
        if user is None or not must_enrol(user):
            return
        device, _ = TOTPDevice.objects.get_or_create(user=user, name="test helper", confirmed=True)
        session[DEVICE_ID_SESSION_KEY] = device.persistent_id
        session.save()

    def force_login(self, user, backend=None):
        original_force_login(self, user, backend)
        verify(self)

    def login(self, **credentials):
        ok = original_login(self, **credentials)
        if ok:
            verify(self)
        return ok

    monkeypatch.setattr(Client, "force_login", force_login)
    monkeypatch.setattr(Client, "login", login)
    yield


@pytest.fixture
def real_second_factor():
    """Requested by tests of the second factor: sign-ins are not verified by the helper."""
    return None
