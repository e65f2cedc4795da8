"""Second factor (TOTP): required for staff and calibration admins, optional for others."""

from __future__ import annotations

import re
import time
from base64 import b32decode

import pytest
from django.contrib.auth.models import Group, User
from django.urls import reverse
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

from webapp.core.models import AuditEvent

pytestmark = pytest.mark.usefixtures("real_second_factor")
PASSWORD = "correct-horse-battery-9"


def code_for(secret_b32: str, *, offset_steps: int = 0) -> str:
    """The code an authenticator app shows now for this secret (RFC 6238, 30 s, 6 digits)."""
    key = b32decode(secret_b32 + "=" * (-len(secret_b32) % 8))
    totp = TOTP(key)
    totp.time = time.time() + 30 * offset_steps
    return f"{totp.token():06d}"


def device_secret(device: TOTPDevice) -> str:
    from base64 import b32encode

    return b32encode(device.bin_key).decode().rstrip("=")


@pytest.fixture
def staff(db):
    return User.objects.create_user("staffer", password=PASSWORD, is_staff=True)


@pytest.fixture
def calibration_admin(db):
    user = User.objects.create_user("qa_admin", password=PASSWORD)
    user.groups.add(Group.objects.get_or_create(name="CalibrationAdmin")[0])
    return user


def password_sign_in(client, username: str):
    return client.post(reverse("login"), {"username": username, "password": PASSWORD})


@pytest.mark.parametrize("who", ["staff", "calibration_admin"])
def test_a_user_who_must_enrol_reaches_only_enrolment(client, request, who):
    user = request.getfixturevalue(who)
    password_sign_in(client, user.username)
    for path in ("/patients/", "/admin/", "/calibration/"):
        response = client.get(path)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("otp-enrol"))
    api = client.get("/api/studies/")
    assert api.status_code == 403 and "Second factor required" in api.json()["detail"]
    assert client.get(reverse("otp-enrol")).status_code == 200


def test_enrolment_shows_a_qr_code_and_a_secret_and_confirms_with_a_code(client, staff):
    password_sign_in(client, staff.username)
    page = client.get(reverse("otp-enrol"), {"next": "/patients/"}).content.decode()
    assert 'src="data:image/svg+xml' in page and "<script" not in page.split("<main")[-1]
    secret = re.search(r'id="totp-secret">([A-Z2-7]+)<', page).group(1)
    wrong = client.post(reverse("otp-enrol"), {"code": "000000", "next": "/patients/"})
    assert wrong.status_code == 200 and "not right" in wrong.content.decode()
    assert not TOTPDevice.objects.filter(user=staff, confirmed=True).exists()
    time.sleep(1.1)  # django-otp's back-off after one wrong code: 1 s
    done = client.post(reverse("otp-enrol"), {"code": code_for(secret), "next": "/patients/"})
    assert done.status_code == 302 and done["Location"] == "/patients/"
    assert TOTPDevice.objects.filter(user=staff, confirmed=True).count() == 1
    assert client.get("/patients/").status_code == 200
    assert AuditEvent.objects.filter(username="staffer", detail="second factor enrolled").exists()


def test_with_a_device_a_wrong_code_is_refused_and_audited_and_the_right_one_lets_in(client, staff):
    device = TOTPDevice.objects.create(user=staff, name="phone", confirmed=True)
    password_sign_in(client, staff.username)
    gate = client.get("/patients/")
    assert gate.status_code == 302 and gate["Location"].startswith(reverse("otp-verify"))
    # a device already exists: enrolment cannot be used to replace it before verifying
    assert client.get(reverse("otp-enrol"))["Location"] == reverse("otp-verify")
    wrong = client.post(reverse("otp-verify"), {"code": code_for(device_secret(device), offset_steps=10)})
    assert wrong.status_code == 200 and "not right" in wrong.content.decode()
    assert client.get("/patients/").status_code == 302
    failed = AuditEvent.objects.filter(action="login_failed", username="staffer").get()
    assert failed.detail == "wrong second-factor code"
    device.refresh_from_db()
    device.throttling_failure_timestamp = None  # the test does not wait out the back-off
    device.throttling_failure_count = 0
    device.save()
    right = client.post(reverse("otp-verify"), {"code": code_for(device_secret(device)), "next": "/jobs/"})
    assert right.status_code == 302 and right["Location"] == "/jobs/"
    assert client.get("/patients/").status_code == 200
    assert AuditEvent.objects.filter(action="login", detail="second factor verified").exists()


def test_after_a_wrong_code_even_the_right_one_waits_out_the_back_off(client, staff):
    device = TOTPDevice.objects.create(user=staff, name="phone", confirmed=True)
    password_sign_in(client, staff.username)
    client.post(reverse("otp-verify"), {"code": code_for(device_secret(device), offset_steps=10)})
    client.post(reverse("otp-verify"), {"code": code_for(device_secret(device))})
    assert client.get("/patients/").status_code == 302


def test_a_code_is_not_accepted_twice(client, staff):
    device = TOTPDevice.objects.create(user=staff, name="phone", confirmed=True)
    code = code_for(device_secret(device))
    password_sign_in(client, staff.username)
    assert client.post(reverse("otp-verify"), {"code": code}).status_code == 302
    client.logout()
    password_sign_in(client, staff.username)
    assert client.post(reverse("otp-verify"), {"code": code}).status_code == 200
    assert client.get("/patients/").status_code == 302


def test_bad_input_is_a_one_line_message(client, staff):
    TOTPDevice.objects.create(user=staff, name="phone", confirmed=True)
    password_sign_in(client, staff.username)
    page = client.post(reverse("otp-verify"), {"code": "12ab<script>"})
    assert page.status_code == 200 and "Enter the 6-digit code" in page.content.decode()
    assert client.post(reverse("otp-verify"), {"next": "https://evil.example/"}).status_code == 200


def test_others_may_work_without_a_device_but_are_asked_once_enrolled(client, surgeon_a):
    client.post(reverse("login"), {"username": "surgeon_a", "password": "pw-surgeon_a-123"})
    assert client.get("/patients/").status_code == 200
    client.logout()
    TOTPDevice.objects.create(user=surgeon_a, name="phone", confirmed=True)
    client.post(reverse("login"), {"username": "surgeon_a", "password": "pw-surgeon_a-123"})
    assert client.get("/patients/")["Location"].startswith(reverse("otp-verify"))


def test_the_password_step_keeps_its_lockout(client, staff, settings):
    for _ in range(settings.AXES_FAILURE_LIMIT):
        client.post(reverse("login"), {"username": staff.username, "password": "wrong-password-1"})
    locked = password_sign_in(client, staff.username)
    assert locked.status_code == 429
    assert "_auth_user_id" not in client.session
    assert client.get(reverse("otp-verify")).status_code == 302  # to the sign-in page


def test_single_sign_on_sessions_are_exempt(client, staff):
    client.force_login(staff, backend="webapp.core.oidc.OIDCBackend")
    assert client.get("/patients/").status_code == 200
    client.force_login(staff, backend="django.contrib.auth.backends.ModelBackend")
    assert client.get("/patients/").status_code == 302


def test_re_authentication_accepts_the_current_code(client, staff, settings):
    from webapp.core.reauth import AUTH_AT_KEY

    device = TOTPDevice.objects.create(user=staff, name="phone", confirmed=True)
    password_sign_in(client, staff.username)
    client.post(reverse("otp-verify"), {"code": code_for(device_secret(device))})
    session = client.session
    session[AUTH_AT_KEY] -= settings.ORTHOFUSE_REAUTH_MINUTES * 60 + 1
    session.save()
    asked = client.post(reverse("api-token-create"), {"name": "nav", "days": "7"})
    assert asked["Location"].startswith(reverse("reauth"))
    confirmed = client.post(
        reverse("reauth"), {"secret": code_for(device_secret(device), offset_steps=1), "next": "/"}
    )
    assert confirmed.status_code == 302
    assert client.post(reverse("api-token-create"), {"name": "nav", "days": "7"}).status_code == 200
    assert AuditEvent.objects.filter(detail="re-authenticated", username="staffer").exists()


def test_replacing_a_device_needs_a_recent_proof(client, staff, settings):
    from webapp.core.reauth import AUTH_AT_KEY

    device = TOTPDevice.objects.create(user=staff, name="phone", confirmed=True)
    password_sign_in(client, staff.username)
    client.post(reverse("otp-verify"), {"code": code_for(device_secret(device))})
    assert client.get(reverse("otp-enrol")).status_code == 200
    session = client.session
    session[AUTH_AT_KEY] -= settings.ORTHOFUSE_REAUTH_MINUTES * 60 + 1
    session.save()
    assert client.get(reverse("otp-enrol"))["Location"].startswith(reverse("reauth"))
