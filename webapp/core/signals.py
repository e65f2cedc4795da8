"""Audit receivers for authentication events (successful and failed logins)."""

from __future__ import annotations

from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.dispatch import receiver

from webapp.core.audit import client_ip, record
from webapp.core.models import AuditEvent


@receiver(user_logged_in, dispatch_uid="orthofuse-audit-login")
def audit_login(sender, request, user, **kwargs) -> None:
    """A password sign-in says "login"; a single sign-on one names the provider."""
    detail = "login"
    if getattr(user, "backend", "") == "webapp.core.oidc.OIDCBackend":
        from webapp.core.oidc_config import provider_name

        detail = f"login via single sign-on ({provider_name()})"[:500]
    record(request, AuditEvent.Action.LOGIN, user=user, detail=detail)
    if request is not None and hasattr(request, "session"):
        from webapp.core.reauth import mark_authenticated

        mark_authenticated(request)  # a sign-in counts as a recent proof (webapp.core.reauth)


def _refused_while_locked_out(request) -> bool:
    """Axes refused the attempt before checking the password (the user name or address is
    locked out): such attempts are not counted, and not audited, so they cannot flood the
    trail. Axes's receiver runs first ("axes" precedes webapp.core in INSTALLED_APPS): on a
    counted failure it sets ``axes_failures_since_start``; a refused one leaves it None."""
    return bool(getattr(request, "axes_locked_out", False)) and (
        getattr(request, "axes_failures_since_start", None) is None
    )


@receiver(user_login_failed, dispatch_uid="orthofuse-audit-login-failed")
def audit_login_failed(sender, credentials, request=None, **kwargs) -> None:
    """Keep the attempted user name (never the password) so failed attempts are searchable;
    the failure that locks the user name or address out says so."""
    if request is not None and _refused_while_locked_out(request):
        return
    username = str((credentials or {}).get("username", ""))[:150]
    locked = request is not None and bool(getattr(request, "axes_locked_out", False))
    AuditEvent.objects.create(
        user=None,
        username=username,
        action=AuditEvent.Action.LOGIN_FAILED,
        detail="failed login; now locked out" if locked else "failed login",
        ip_address=client_ip(request),
        path=(request.get_full_path()[:500] if request is not None else ""),
    )
