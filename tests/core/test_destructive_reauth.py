"""Every destructive action (the one list in :mod:`webapp.core.destructive`) demands a recent
re-authentication; the URL patterns are walked so that the list and the views agree."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from webapp.core.destructive import CLINICAL_ADMIN_APPS, DESTRUCTIVE, Destructive
from webapp.core.reauth import ASK_AGAIN, AUTH_AT_KEY
from webapp.core.reauth_admin import RecentAuthAdminMixin

MISSING_PK = 987654


def walk(resolver: URLResolver, prefix: str = "") -> dict[str, URLPattern]:
    """Every named URL pattern (``namespace:name``) of the URLconf."""
    found: dict[str, URLPattern] = {}
    for entry in resolver.url_patterns:
        if isinstance(entry, URLResolver):
            space = f"{prefix}{entry.namespace}:" if entry.namespace else prefix
            found.update(walk(entry, space))
        elif entry.name:
            found.setdefault(prefix + entry.name, entry)
    return found


PATTERNS = walk(get_resolver())


def url_of(name: str) -> str:
    groups = PATTERNS[name].pattern.regex.groupindex
    kwargs = {key: str(MISSING_PK) for key in groups if key != "format"}
    return reverse(name, kwargs=kwargs or None)


def stale_client(client, user, settings):
    client.force_login(user)
    session = client.session
    session[AUTH_AT_KEY] -= settings.ORTHOFUSE_REAUTH_MINUTES * 60 + 1
    session.save()
    return client


def test_every_listed_action_is_a_url_of_the_site():
    assert [d.url_name for d in DESTRUCTIVE if d.url_name not in PATTERNS] == []


def test_every_view_marked_for_re_authentication_is_in_the_list():
    marked = {n for n, p in PATTERNS.items() if getattr(p.callback, "requires_recent_auth", 0)}
    assert marked, "the walk found no decorated view at all"
    assert marked <= {d.url_name for d in DESTRUCTIVE}


DESTRUCTIVE_WORDS = ("delete", "cancel", "close", "revoke", "reject", "retire", "remove")


def _accepts_delete(pattern: URLPattern) -> bool:
    """A REST view answering the DELETE method (viewset action or APIView method)."""
    actions = getattr(pattern.callback, "actions", None) or {}
    view_class = getattr(pattern.callback, "cls", None)
    return "delete" in actions or (not actions and hasattr(view_class, "delete"))


def test_every_destructive_looking_url_is_listed():
    """Outside the admin (its own test below), a URL named for deleting, cancelling,
    closing, revoking or rejecting, or answering DELETE, is in the list."""
    listed = {d.url_name for d in DESTRUCTIVE}
    looks = {
        name for name, pattern in PATTERNS.items()
        if not name.startswith("admin:")
        and (any(w in name.rsplit(":", 1)[-1] for w in DESTRUCTIVE_WORDS) or _accepts_delete(pattern))
    }
    assert looks, "the walk found no destructive-looking URL at all"
    assert sorted(looks - listed) == []


def test_every_listed_page_view_is_marked():
    """The listed non-admin, non-API views carry the decorator (the API ones the permission)."""
    unmarked = [
        d.url_name for d in DESTRUCTIVE
        if not d.url_name.startswith("admin:") and not _is_api(d)
        and not getattr(PATTERNS[d.url_name].callback, "requires_recent_auth", False)
    ]
    assert unmarked == []


def test_every_clinical_admin_asks_again_and_is_listed():
    listed = {d.url_name for d in DESTRUCTIVE}
    for model, model_admin in admin.site._registry.items():
        meta = model._meta
        if meta.app_label not in CLINICAL_ADMIN_APPS or not model_admin.has_delete_permission:
            continue
        assert isinstance(model_admin, RecentAuthAdminMixin), meta.label
        assert f"admin:{meta.app_label}_{meta.model_name}_delete" in listed, meta.label


def _is_api(action: Destructive) -> bool:
    return url_of(action.url_name).startswith("/api/")


def _request(client, action: Destructive):
    url = url_of(action.url_name)
    if action.admin_action:
        data = {"action": action.admin_action, "_selected_action": [str(MISSING_PK)]}
        return client.post(url, data, HTTP_REFERER=url)
    if _is_api(action):
        return client.post(url, content_type="application/json")
    if action.method == "GET":
        return client.get(url)
    return client.post(url, HTTP_REFERER="/")


@pytest.mark.django_db
@pytest.mark.parametrize("action", DESTRUCTIVE, ids=lambda d: f"{d.url_name}{d.admin_action}")
def test_a_stale_session_is_asked_to_re_authenticate(client, make_user, settings, action):
    user = make_user("chief", "Surgeon", superuser=True)
    response = _request(stale_client(client, user, settings), action)
    if _is_api(action):
        assert response.status_code == 403
        assert response.json()["detail"] == ASK_AGAIN
    else:
        assert response.status_code == 302, action
        assert response["Location"].startswith(reverse("reauth") + "?next=")


@pytest.mark.django_db
@pytest.mark.parametrize("action", DESTRUCTIVE, ids=lambda d: f"{d.url_name}{d.admin_action}")
def test_a_recent_proof_reaches_the_action(client, make_user, action):
    client.force_login(make_user("chief", "Surgeon", superuser=True))
    response = _request(client, action)
    location = response.get("Location", "") if response.status_code == 302 else ""
    assert not location.startswith(reverse("reauth")), action
    assert response.status_code != 403 or "detail" not in response.json()


@pytest.mark.django_db
def test_an_api_token_is_its_own_proof(client, make_user, settings):
    from webapp.core.api_tokens import create_token

    user = make_user("robot", "Surgeon")
    _, token = create_token(user, "nav", 7)
    response = client.post(
        url_of("api-job-cancel"), HTTP_AUTHORIZATION=f"Bearer {token}",
        content_type="application/json",
    )
    assert response.status_code == 404  # past the proof: the job simply does not exist


@pytest.mark.django_db
def test_the_api_schema_still_lists_the_api_actions(client, make_user):
    """The schema generator's stand-in request has no session: the permission lets the
    action be listed instead of failing the whole schema."""
    client.force_login(make_user("reader", "Surgeon"))
    response = client.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    api_paths = [url_of(d.url_name) for d in DESTRUCTIVE if _is_api(d)]
    text = response.content.decode()
    for path in api_paths:
        assert path.replace(str(MISSING_PK), "{id}") in text
