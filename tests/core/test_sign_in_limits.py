"""Failed sign-ins are limited per user name and per address on the site and the admin; the
API takes no HTTP Basic; failed sign-ins cannot flood the audit trail."""

from __future__ import annotations

import base64

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from webapp.core.models import AuditEvent

PER_USER = 5
PER_ADDRESS = 20


@pytest.fixture(autouse=True)
def limits(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast tests
    settings.AXES_FAILURE_LIMIT = PER_USER
    settings.ORTHOFUSE_LOGIN_FAILURES_PER_ADDRESS = PER_ADDRESS


def _sign_in(client, username, password, *, url="login", ip="10.0.0.1"):
    return client.post(reverse(url), {"username": username, "password": password}, REMOTE_ADDR=ip)


def _signed_in(client) -> bool:
    return "_auth_user_id" in client.session


@pytest.mark.django_db
def test_user_name_locked_after_limit_even_with_right_password(client, surgeon_a):
    for _ in range(PER_USER - 1):
        assert _sign_in(client, "surgeon_a", "wrong").status_code == 200
    response = _sign_in(client, "surgeon_a", "wrong")  # the failure that locks
    assert response.status_code == 429
    response = _sign_in(client, "surgeon_a", "pw-surgeon_a-123", ip="10.9.9.9")
    assert response.status_code == 429
    assert "try again in 15 minutes" in response.content.decode()
    assert not _signed_in(client)


@pytest.mark.django_db
def test_right_password_below_the_limit_signs_in_and_resets(client, surgeon_a):
    for _ in range(PER_USER - 1):
        _sign_in(client, "surgeon_a", "wrong")
    assert _sign_in(client, "surgeon_a", "pw-surgeon_a-123").status_code == 302
    client.logout()
    for _ in range(PER_USER - 1):  # the success reset the count
        assert _sign_in(client, "surgeon_a", "wrong").status_code == 200
    assert _sign_in(client, "surgeon_a", "pw-surgeon_a-123").status_code == 302


@pytest.mark.django_db
def test_address_locked_after_its_larger_limit_other_addresses_not(client, surgeon_a):
    """A shared workstation: several user names fail from one address."""
    for i in range(PER_ADDRESS - 1):
        assert _sign_in(client, f"nobody{i % 5}", "wrong").status_code == 200, i
    assert _sign_in(client, "nobody9", "wrong").status_code == 429
    assert _sign_in(client, "surgeon_a", "pw-surgeon_a-123").status_code == 429
    assert _sign_in(client, "surgeon_a", "pw-surgeon_a-123", ip="10.0.0.2").status_code == 302


@pytest.mark.django_db
def test_admin_sign_in_is_limited_too(client, make_user):
    make_user("root", superuser=True)
    for _ in range(PER_USER):
        _sign_in(client, "root", "wrong", url="admin:login")
    assert _sign_in(client, "root", "pw-root-123", url="admin:login").status_code == 429
    assert not _signed_in(client)


@pytest.mark.django_db
def test_thirty_failures_write_only_the_counted_audit_rows(client, surgeon_a):
    for _ in range(30):
        _sign_in(client, "surgeon_a", "wrong")
    rows = list(AuditEvent.objects.filter(action=AuditEvent.Action.LOGIN_FAILED).order_by("id"))
    assert len(rows) == PER_USER
    assert rows[-1].detail == "failed login; now locked out"
    assert {row.username for row in rows} == {"surgeon_a"}


@pytest.mark.django_db
def test_failed_passwords_are_not_stored(client, surgeon_a):
    from axes.models import AccessAttempt

    _sign_in(client, "surgeon_a", "pw-surgeon_a-124")  # a near miss, worth stealing
    [attempt] = AccessAttempt.objects.all()
    assert "pw-surgeon_a-124" not in attempt.post_data + attempt.get_data
    assert not AuditEvent.objects.filter(detail__contains="pw-surgeon").exists()


@pytest.mark.django_db
def test_api_refuses_http_basic(client, surgeon_a):
    token = base64.b64encode(b"surgeon_a:pw-surgeon_a-123").decode()
    response = client.get("/api/patients/", HTTP_AUTHORIZATION=f"Basic {token}")
    assert response.status_code in (401, 403)
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.LOGIN).exists()


@pytest.mark.django_db
def test_password_change_page_needs_twelve_characters(client, surgeon_a):
    url = reverse("password_change")
    assert client.get(url).status_code == 302  # sign-in first
    client.force_login(surgeon_a)
    page = client.get(url)
    assert page.status_code == 200 and b"At least 12 characters" in page.content
    short = {"old_password": "pw-surgeon_a-123", "new_password1": "Xq7#short", "new_password2": "Xq7#short"}
    response = client.post(url, short)
    assert response.status_code == 200
    assert "at least 12 characters" in response.content.decode()
    good = "tibia-plateau-47-Kw"
    response = client.post(
        url, {"old_password": "pw-surgeon_a-123", "new_password1": good, "new_password2": good}
    )
    assert response.status_code == 302 and response["Location"] == reverse("password_change_done")
    assert get_user_model().objects.get(pk=surgeon_a.pk).check_password(good)
    [changed] = AuditEvent.objects.filter(action=AuditEvent.Action.UPDATE, detail="password changed")
    assert changed.username == "surgeon_a" and good not in changed.path + changed.detail
    assert client.get(reverse("password_change_done")).status_code == 200


@pytest.mark.django_db
def test_per_address_limit_can_be_turned_off(client, surgeon_a, settings):
    settings.ORTHOFUSE_LOGIN_FAILURES_PER_ADDRESS = 0
    for i in range(30):
        assert _sign_in(client, f"nobody{i}", "wrong").status_code == 200, i
    assert _sign_in(client, "surgeon_a", "pw-surgeon_a-123").status_code == 302


@pytest.mark.django_db
def test_behind_a_trusted_proxy_the_forwarded_address_counts(client, surgeon_a, settings):
    """The proxy appends the address it saw; what the client wrote before it is ignored."""
    settings.ORTHOFUSE_TRUSTED_PROXIES = 1

    def via_proxy(username, password, seen_by_proxy, spoofed="203.0.113.9"):
        return client.post(
            reverse("login"), {"username": username, "password": password},
            REMOTE_ADDR="10.0.0.254", HTTP_X_FORWARDED_FOR=f"{spoofed}, {seen_by_proxy}",
        )  # fmt: skip

    for i in range(PER_ADDRESS):
        via_proxy(f"nobody{i % 5}", "wrong", "192.0.2.10", spoofed=f"198.51.100.{i}")
    assert via_proxy("surgeon_a", "pw-surgeon_a-123", "192.0.2.10").status_code == 429
    assert via_proxy("surgeon_a", "pw-surgeon_a-123", "192.0.2.11").status_code == 302
    failed = AuditEvent.objects.filter(action=AuditEvent.Action.LOGIN_FAILED)
    assert set(failed.values_list("ip_address", flat=True)) == {"192.0.2.10"}
