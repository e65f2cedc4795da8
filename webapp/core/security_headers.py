"""Response headers for a site that holds patient data on shared workstations.

* ``Content-Security-Policy`` (``settings.ORTHOFUSE_CSP``): scripts only from this origin.
* ``Permissions-Policy`` (``settings.ORTHOFUSE_PERMISSIONS_POLICY``): no camera, microphone,
  geolocation, payment or USB.
* ``Cache-Control: no-store`` on every response made for a signed-in user (every page and
  download behind sign-in may show patient data), so no browser or proxy keeps a copy.
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils.cache import add_never_cache_headers


def _signed_in(request: HttpRequest) -> bool:
    user = getattr(request, "user", None)
    return bool(user is not None and user.is_authenticated)


class SecurityHeadersMiddleware:
    """Adds the headers above; place it after ``AuthenticationMiddleware``."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if settings.ORTHOFUSE_CSP:
            response.headers.setdefault("Content-Security-Policy", settings.ORTHOFUSE_CSP)
        if settings.ORTHOFUSE_PERMISSIONS_POLICY:
            response.headers.setdefault("Permissions-Policy", settings.ORTHOFUSE_PERMISSIONS_POLICY)
        if _signed_in(request):
            add_never_cache_headers(response)  # no-cache, no-store, must-revalidate, private
        return response
