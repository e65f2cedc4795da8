"""Site-wide views: home redirect, the audited password change and the health check."""

from __future__ import annotations

import time

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import LoginView, PasswordChangeView
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_GET


@login_required
def home(request: HttpRequest) -> HttpResponse:
    return redirect("records:patient-list")


class SignInView(LoginView):
    """Django's sign-in page, with the single sign-on button when a provider is configured."""

    def get_context_data(self, **kwargs):
        from webapp.core.oidc_config import oidc_enabled, provider_name

        context = super().get_context_data(**kwargs)
        context["sso_enabled"] = oidc_enabled()
        context["sso_provider_name"] = provider_name()
        context["sso_failed"] = self.request.GET.get("sso") == "failed"
        return context


class AuditedPasswordChangeView(PasswordChangeView):
    """Django's password change (12+ characters, other sessions signed out), audited."""

    def form_valid(self, form):
        from webapp.core.audit import record

        response = super().form_valid(form)
        record(self.request, "update", obj=self.request.user, detail="password changed")
        return response


def _check_database() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return "ok"


def _check_broker() -> str:
    from webapp.celery import app

    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=3)
    return "ok"


def _check_storage() -> str:
    name = default_storage.save(f"healthz/{time.time_ns()}.txt", ContentFile(b"ok"))
    try:
        with default_storage.open(name) as handle:
            if handle.read() != b"ok":
                raise OSError("storage returned different bytes")
    finally:
        default_storage.delete(name)
    return "ok"


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """Checks the database, the broker and the storage; 200 when all pass, else 503."""
    checks: dict[str, str] = {}
    for name, check in (("database", _check_database), ("broker", _check_broker), ("storage", _check_storage)):
        try:
            checks[name] = check()
        except Exception as exc:  # noqa: BLE001 - a health check reports any failure
            checks[name] = f"error: {type(exc).__name__}: {exc}"[:300]
    healthy = all(value == "ok" for value in checks.values())
    body = {"status": "ok" if healthy else "error", "checks": checks, "debug": settings.DEBUG}
    return JsonResponse(body, status=200 if healthy else 503)
