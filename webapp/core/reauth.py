"""Re-authentication for destructive actions: a password or TOTP code within the last
``ORTHOFUSE_REAUTH_MINUTES`` minutes (sign-in, second-factor verification and the
re-authentication page all count), else the action first asks for it again.

One mechanism, three doors: :func:`recent_auth_required` for views,
:class:`RecentAuthPermission` for REST API actions and
:class:`webapp.core.reauth_admin.RecentAuthAdminMixin` for admin deletions. Which actions
demand it is listed in one place, :mod:`webapp.core.destructive`."""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import wraps

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.utils.http import urlencode
from rest_framework.authentication import SessionAuthentication
from rest_framework.permissions import BasePermission

AUTH_AT_KEY = "orthofuse_authenticated_at"
ASK_AGAIN = "Confirm who you are first: re-authenticate at /account/confirm/, then try again."


def mark_authenticated(request: HttpRequest) -> None:
    """The user just proved who they are (password, code or provider)."""
    request.session[AUTH_AT_KEY] = time.time()


def authenticated_recently(request: HttpRequest) -> bool:
    session = getattr(request, "session", None)
    at = session.get(AUTH_AT_KEY) if session is not None else None
    limit_s = float(getattr(settings, "ORTHOFUSE_REAUTH_MINUTES", 5)) * 60.0
    return isinstance(at, int | float) and time.time() - at <= limit_s


def ask_again(request: HttpRequest) -> HttpResponse | None:
    """The redirect to the re-authentication page when a signed-in user's proof is stale
    (coming back to the page the action was on; a POST is not replayed), else None."""
    if not request.user.is_authenticated or authenticated_recently(request):
        return None
    back = request.get_full_path() if request.method == "GET" else (
        request.headers.get("Referer") or request.path
    )
    return redirect(f"{redirect('reauth').url}?{urlencode({'next': back})}")


def recent_auth_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Decorate a destructive view: without a recent proof, go to the re-authentication page
    first. The wrapper carries ``requires_recent_auth`` so the URL walk can find it."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        return ask_again(request) or view(request, *args, **kwargs)

    wrapper.requires_recent_auth = True  # type: ignore[attr-defined]
    return wrapper


class RecentAuthPermission(BasePermission):
    """REST API actions: a browser session needs a recent proof (403 with the way out);
    an API token is itself presented with every request, so machines pass."""

    message = ASK_AGAIN

    def has_permission(self, request, view) -> bool:
        if not isinstance(request.successful_authenticator, SessionAuthentication):
            return True
        if getattr(request, "session", None) is None:
            # the API schema generator's stand-in request, never a browser's (session
            # authentication needs the session middleware): the action is listed
            return True
        return authenticated_recently(request)
