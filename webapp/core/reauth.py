"""Re-authentication for destructive actions: a password or TOTP code within the last
``ORTHOFUSE_REAUTH_MINUTES`` minutes (sign-in, second-factor verification and the
re-authentication page all count), else the action first asks for it again."""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import wraps

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.utils.http import urlencode

AUTH_AT_KEY = "orthofuse_authenticated_at"


def mark_authenticated(request: HttpRequest) -> None:
    """The user just proved who they are (password, code or provider)."""
    request.session[AUTH_AT_KEY] = time.time()


def authenticated_recently(request: HttpRequest) -> bool:
    at = request.session.get(AUTH_AT_KEY)
    limit_s = float(getattr(settings, "ORTHOFUSE_REAUTH_MINUTES", 5)) * 60.0
    return isinstance(at, int | float) and time.time() - at <= limit_s


def recent_auth_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Decorate a destructive view: without a recent proof, go to the re-authentication page
    and come back to the page the action was on (a POST is not replayed)."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if request.user.is_authenticated and not authenticated_recently(request):
            back = request.get_full_path() if request.method == "GET" else (
                request.headers.get("Referer") or request.path
            )
            return redirect(f"{redirect('reauth').url}?{urlencode({'next': back})}")
        return view(request, *args, **kwargs)

    return wrapper
