"""The API token page in a browser: a surgeon creates a token and sees it once (it works
for the API), it is gone after a reload, and revoking it after the sign-in has gone stale
first asks for the password again; the revoked token no longer works."""

from __future__ import annotations

import pytest
import requests

pytestmark = pytest.mark.browser


def _api_status(live_server, token: str) -> int:
    return requests.get(
        f"{live_server.url}/api/studies/", headers={"Authorization": f"Bearer {token}"}, timeout=30
    ).status_code


def _make_stale(page, settings) -> None:
    """Age the browser session's last proof of identity past ORTHOFUSE_REAUTH_MINUTES."""
    from django.contrib.sessions.backends.db import SessionStore

    from webapp.core.reauth import AUTH_AT_KEY

    cookie = next(c for c in page.context.cookies() if c["name"] == settings.SESSION_COOKIE_NAME)
    session = SessionStore(session_key=cookie["value"])
    session[AUTH_AT_KEY] -= settings.ORTHOFUSE_REAUTH_MINUTES * 60 + 1
    session.save()


def test_create_see_once_then_revoke_after_re_authenticating(
    login_page, page_url, live_server, surgeon_a, settings
):
    from webapp.core.models import ApiToken

    page = login_page(surgeon_a)
    page.goto(page_url("api-tokens"))
    assert page.text_content("tbody").strip() == "No tokens."
    page.fill("input[name=name]", "navigation cart")
    page.fill("input[name=days]", "30")
    page.click("button:has-text('Create token')")
    page.wait_for_selector("#new-token")
    token = page.text_content("#new-token").strip()
    row = ApiToken.objects.get(user=surgeon_a)
    assert token.startswith(row.prefix) and row.name == "navigation cart"
    assert "Copy this token now" in page.text_content("[role=alert]")
    assert _api_status(live_server, token) == 200

    page.goto(page_url("api-tokens"))  # shown once: a reload no longer has it
    assert page.locator("#new-token").count() == 0
    assert token not in page.content()
    table = page.text_content("tbody")
    assert "navigation cart" in table and "active" in table

    _make_stale(page, settings)
    page.click("button:has-text('Revoke')")
    page.wait_for_url(f"{page_url('reauth')}**")
    page.fill("input[name=secret]", "pw-surgeon_a-123")
    page.click("button:has-text('Confirm')")
    page.wait_for_url(page_url("api-tokens"))
    row.refresh_from_db()
    assert row.revoked_at is None  # the stale POST was not replayed
    page.click("button:has-text('Revoke')")
    page.wait_for_selector("tbody td:has-text('revoked')")
    row.refresh_from_db()
    assert row.revoked_at is not None
    assert page.locator("button:has-text('Revoke')").count() == 0
    assert _api_status(live_server, token) in (401, 403)
    assert page.console_errors == []
