"""Second factor (TOTP, django-otp): who must present one, and the gate that asks for it.

Staff, site admins (superusers) and calibration admins must enrol and verify a TOTP code
after their password before any page; other local users may enrol, and once enrolled are
asked too. Sessions opened through single sign-on are exempt: the hospital's identity
provider performs its own multi-factor authentication (its policy, not ours, applies).
There is no setting that turns the requirement off.
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect
from django.urls import Resolver404, resolve
from django.utils.http import urlencode
from django_otp import user_has_device

from webapp.core.roles import CALIBRATION_ADMIN, has_role

SSO_BACKEND = "webapp.core.oidc.OIDCBackend"
# Pages an unverified user may open: the second-factor pages themselves, and signing out.
OPEN_URL_NAMES = frozenset({"otp-enrol", "otp-verify", "logout", "login", "healthz"})


def must_enrol(user) -> bool:
    """True for users who may not work without a second factor."""
    if not getattr(user, "is_authenticated", False):
        return False
    return bool(user.is_staff or has_role(user, CALIBRATION_ADMIN))


def signed_in_by_sso(request: HttpRequest) -> bool:
    return request.session.get(BACKEND_SESSION_KEY) == SSO_BACKEND


def needs_second_factor(request: HttpRequest) -> bool:
    """The signed-in user has not yet verified a code in this session, and must."""
    user = request.user
    if not user.is_authenticated or signed_in_by_sso(request) or user.is_verified():
        return False
    return must_enrol(user) or user_has_device(user, confirmed=True)


def _open_path(request: HttpRequest) -> bool:
    if request.path_info.startswith("/" + settings.STATIC_URL.lstrip("/")):
        return True
    try:
        return resolve(request.path_info).url_name in OPEN_URL_NAMES
    except Resolver404:
        return False


class SecondFactorMiddleware:
    """Place after ``OTPMiddleware`` and ``IdleTimeoutMiddleware``. Pages redirect to
    verification (or enrolment when the user has no device yet); the API answers 403."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if needs_second_factor(request) and not _open_path(request):
            if request.path_info.startswith("/api/"):
                return JsonResponse(
                    {"detail": "Second factor required: verify your code on the site first."},
                    status=403,
                )
            target = "otp-verify" if user_has_device(request.user, confirmed=True) else "otp-enrol"
            query = urlencode({"next": request.get_full_path()}) if request.method == "GET" else ""
            url = redirect(target).url
            return redirect(f"{url}?{query}" if query else url)
        return self.get_response(request)
