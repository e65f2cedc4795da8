"""Sign a session out after ``ORTHOFUSE_SESSION_IDLE_MINUTES`` without activity.

Activity is any request of the signed-in user except background polls, which send the
``X-OrthoFuse-Background: 1`` header (job progress, training curves): a page left open on a
shared workstation does not keep its session alive. The time of the last activity is kept in
the session and written at most every ``WRITE_EVERY_S`` seconds.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.http import HttpRequest, HttpResponse

LAST_ACTIVITY_KEY = "orthofuse_last_activity"
BACKGROUND_HEADER = "X-OrthoFuse-Background"
WRITE_EVERY_S = 15.0


def idle_limit_s() -> float:
    return float(settings.ORTHOFUSE_SESSION_IDLE_MINUTES) * 60.0


class IdleTimeoutMiddleware:
    """Place after ``AuthenticationMiddleware`` and ``MessageMiddleware``."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            self._check(request)
        return self.get_response(request)

    def _check(self, request: HttpRequest) -> None:
        now = time.time()
        last = request.session.get(LAST_ACTIVITY_KEY)
        if isinstance(last, int | float) and now - last > idle_limit_s():
            logout(request)  # the view then sees an anonymous user: sign-in page or 403
            minutes = settings.ORTHOFUSE_SESSION_IDLE_MINUTES
            messages.info(request, f"You were signed out after {minutes} minutes without activity.")
            return
        background = request.headers.get(BACKGROUND_HEADER) == "1"
        if last is None or (not background and now - last >= WRITE_EVERY_S):
            request.session[LAST_ACTIVITY_KEY] = now
