"""Per-user API tokens with expiry (machines), their page, and re-authentication before
creating or revoking one."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from webapp.core.api_tokens import create_token, hash_token
from webapp.core.models import ApiToken, AuditEvent
from webapp.core.reauth import AUTH_AT_KEY


def bearer(token: str) -> dict:
    return {"HTTP_AUTHORIZATION": f"Bearer {token}"}


def test_a_valid_token_signs_the_machine_in_as_its_user(surgeon_a, patient_a):
    _, token = create_token(surgeon_a, "navigation", 30)
    response = Client().get("/api/studies/", **bearer(token))
    assert response.status_code == 200
    row = ApiToken.objects.get()
    assert row.last_used_at is not None and row.key_hash == hash_token(token)
    assert token not in str(ApiToken.objects.values_list().get())  # only the hash is stored


@pytest.mark.parametrize("case", ["expired", "revoked", "unknown", "malformed", "inactive"])
def test_expired_revoked_unknown_or_malformed_tokens_are_refused(surgeon_a, case):
    row, token = create_token(surgeon_a, "navigation", 30)
    if case == "expired":
        ApiToken.objects.filter(pk=row.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    elif case == "revoked":
        ApiToken.objects.filter(pk=row.pk).update(revoked_at=timezone.now())
    elif case == "unknown":
        token = token[:-4] + "AAAA"
    elif case == "malformed":
        token = "not-a-token with spaces"
    elif case == "inactive":
        surgeon_a.is_active = False
        surgeon_a.save()
    response = Client().get("/api/studies/", **bearer(token))
    assert response.status_code in (401, 403)
    assert "token" in response.json()["detail"].lower()


def test_token_lifetime_is_bounded(surgeon_a, settings):
    with pytest.raises(ValueError):
        create_token(surgeon_a, "x", settings.ORTHOFUSE_API_TOKEN_MAX_DAYS + 1)
    with pytest.raises(ValueError):
        create_token(surgeon_a, "x", 0)


def test_the_page_shows_a_new_token_once_and_revokes_it_audited(client, surgeon_a):
    client.force_login(surgeon_a)
    session = client.session
    session[AUTH_AT_KEY] = timezone.now().timestamp()
    session.save()
    created = client.post(reverse("api-token-create"), {"name": "navigation", "days": "30"})
    assert created.status_code == 200 and "no-store" in created["Cache-Control"]
    token = re.search(r'id="new-token">(ofk_[^<]+)<', created.content.decode()).group(1)
    listing = client.get(reverse("api-tokens")).content.decode()
    assert token not in listing and "navigation" in listing
    row = ApiToken.objects.get()
    assert Client().get("/api/studies/", **bearer(token)).status_code == 200
    assert client.post(reverse("api-token-revoke", args=[row.pk])).status_code == 302
    assert Client().get("/api/studies/", **bearer(token)).status_code in (401, 403)
    details = list(AuditEvent.objects.filter(object_type="ApiToken").values_list("detail", flat=True))
    assert any("created" in d for d in details) and any("revoked" in d for d in details)
    assert all(token not in d for d in details)


def test_bad_input_and_other_users_tokens(client, surgeon_a, surgeon_b):
    client.force_login(surgeon_a)
    session = client.session
    session[AUTH_AT_KEY] = timezone.now().timestamp()
    session.save()
    too_long = client.post(reverse("api-token-create"), {"name": "nav", "days": "100000"})
    assert too_long.status_code == 200 and "at most" in too_long.content.decode()
    assert not ApiToken.objects.exists()
    other, _ = create_token(surgeon_b, "theirs", 30)
    assert client.post(reverse("api-token-revoke", args=[other.pk])).status_code == 404
    assert ApiToken.objects.get(pk=other.pk).revoked_at is None


def test_creating_a_token_asks_for_the_password_again_after_the_window(client, surgeon_a, settings):
    settings.ORTHOFUSE_REAUTH_MINUTES = 5
    client.force_login(surgeon_a)
    session = client.session
    session[AUTH_AT_KEY] = timezone.now().timestamp() - 6 * 60
    session.save()
    asked = client.post(reverse("api-token-create"), {"name": "nav", "days": "30"},
                        HTTP_REFERER="http://testserver" + reverse("api-tokens"))
    assert asked.status_code == 302 and asked["Location"].startswith(reverse("reauth"))
    assert not ApiToken.objects.exists()
    wrong = client.post(reverse("reauth"), {"secret": "wrong-password-1", "next": reverse("api-tokens")})
    assert wrong.status_code == 200 and "not right" in wrong.content.decode()
    assert AuditEvent.objects.filter(action="login_failed", username="surgeon_a").exists()
    right = client.post(reverse("reauth"), {"secret": "pw-surgeon_a-123", "next": reverse("api-tokens")})
    assert right.status_code == 302 and right["Location"] == reverse("api-tokens")
    again = client.post(reverse("api-token-create"), {"name": "nav", "days": "30"})
    assert again.status_code == 200 and ApiToken.objects.count() == 1


def test_a_password_sign_in_counts_as_recent(client, surgeon_a):
    client.post(reverse("login"), {"username": "surgeon_a", "password": "pw-surgeon_a-123"})
    created = client.post(reverse("api-token-create"), {"name": "nav", "days": "30"})
    assert created.status_code == 200 and ApiToken.objects.count() == 1
