"""Single sign-on end to end against a local OpenID Connect provider started by the test."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import override_settings
from django.urls import reverse

from tests.core.oidc_provider import callback_path, running_provider
from webapp.core.models import AuditEvent, ExternalIdentity
from webapp.core.oidc_config import forget_discovery

CLAIMS = {
    "email": "alice@hospital.example",
    "preferred_username": "alice",
    "given_name": "Alice",
    "family_name": "Liddell",
    "roles": ["ortho-surgeon", "unknown-role"],
    "teams": ["trauma-a"],
}


@pytest.fixture
def provider(db):
    with running_provider() as provider:
        forget_discovery()
        with override_settings(
            ORTHOFUSE_OIDC_ISSUER=provider.issuer,
            ORTHOFUSE_OIDC_PROVIDER_NAME="Hospital IdP",
            OIDC_RP_CLIENT_ID="orthofuse",
            OIDC_RP_CLIENT_SECRET="client-secret",
            ORTHOFUSE_OIDC_ROLE_MAP={"ortho-surgeon": "Surgeon", "ortho-qa": "CalibrationAdmin"},
            ORTHOFUSE_OIDC_TEAM_MAP={"trauma-a": "Trauma A", "spine-b": "Spine B"},
        ):
            yield provider
        forget_discovery()


def sign_in(client, provider, sub: str, next_url: str = "/patients/"):
    start = client.get(reverse("oidc_authentication_init"), {"next": next_url})
    assert start.status_code == 302 and start["Location"].startswith(provider.issuer)
    assert "code_challenge_method=S256" in start["Location"] and "nonce=" in start["Location"]
    back = provider.authorize(start["Location"], sub)
    return client.get(callback_path(back))


def test_login_page_offers_the_provider_only_when_configured(client, provider):
    assert "Sign in with Hospital IdP" in client.get(reverse("login")).content.decode()
    with override_settings(OIDC_RP_CLIENT_ID="", ORTHOFUSE_OIDC_ISSUER=""):
        assert "Sign in with" not in client.get(reverse("login")).content.decode()
        assert client.get(reverse("oidc_authentication_init")).status_code == 404


def test_sign_in_creates_the_user_with_roles_and_teams_and_is_audited(client, provider, team_b):
    provider.set_claims("alice-sub", CLAIMS)
    done = sign_in(client, provider, "alice-sub")
    assert done.status_code == 302 and done["Location"] == "/patients/"
    user = User.objects.get(username="alice")
    assert not user.has_usable_password() and not user.is_staff and not user.is_superuser
    assert user.email == "alice@hospital.example" and user.last_name == "Liddell"
    assert list(user.groups.values_list("name", flat=True)) == ["Surgeon"]
    assert list(user.care_teams.values_list("name", flat=True)) == ["Trauma A"]
    assert ExternalIdentity.objects.get(user=user).subject == "alice-sub"
    assert client.get("/patients/").status_code == 200  # signed in, no second-factor step
    login = AuditEvent.objects.filter(action="login", user=user).get()
    assert login.detail == "login via single sign-on (Hospital IdP)"


def test_a_later_sign_in_follows_changed_claims(client, provider, team_a, team_b):
    provider.set_claims("alice-sub", CLAIMS)
    sign_in(client, provider, "alice-sub")
    client.logout()
    provider.set_claims("alice-sub", {**CLAIMS, "roles": ["ortho-qa"], "teams": ["spine-b"]})
    sign_in(client, provider, "alice-sub")
    user = User.objects.get(username="alice")
    assert list(user.groups.values_list("name", flat=True)) == ["CalibrationAdmin"]
    assert list(user.care_teams.values_list("name", flat=True)) == ["Spine B"]
    assert User.objects.count() == 1


def test_a_local_account_with_the_same_name_is_never_taken_over(client, provider, make_user):
    local = make_user("alice", superuser=True)
    provider.set_claims("alice-sub", CLAIMS)
    sign_in(client, provider, "alice-sub")
    sso_user = User.objects.get(pk=client.session["_auth_user_id"])
    assert sso_user.pk != local.pk and sso_user.username.startswith("alice.sso-")
    assert not sso_user.is_superuser


def test_denied_or_forged_callbacks_sign_nobody_in(client, provider):
    start = client.get(reverse("oidc_authentication_init"))
    denied = client.get(callback_path(provider.deny(start["Location"])))
    assert denied.status_code == 302 and denied["Location"] == "/login/?sso=failed"
    forged = client.get(reverse("oidc_authentication_callback"), {"code": "x", "state": "forged"})
    assert forged.status_code == 302 and forged["Location"] == "/login/?sso=failed"
    page = client.get(forged["Location"])
    assert "Single sign-on did not complete" in page.content.decode()
    assert "_auth_user_id" not in client.session


def test_an_unreachable_provider_is_a_message_not_an_error(client, db):
    forget_discovery()
    with override_settings(ORTHOFUSE_OIDC_ISSUER="http://127.0.0.1:9", OIDC_RP_CLIENT_ID="x"):
        start = client.get(reverse("oidc_authentication_init"))
    forget_discovery()
    assert start.status_code == 302 and start["Location"] == "/login/?sso=failed"


def test_a_password_sign_in_never_reaches_the_provider(client, provider, surgeon_a):
    response = client.post(
        reverse("login") + "?code=x&state=y", {"username": "surgeon_a", "password": "pw-surgeon_a-123"}
    )
    assert response.status_code == 302
    assert AuditEvent.objects.filter(action="login", detail="login").count() == 1
