"""Audit receivers for authentication events (successful and failed logins)."""

from __future__ import annotations

from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.dispatch import receiver

from webapp.core.audit import client_ip, record
from webapp.core.models import AuditEvent


@receiver(user_logged_in, dispatch_uid="orthofuse-audit-login")
def audit_login(sender, request, user, **kwargs) -> None:
    record(request, AuditEvent.Action.LOGIN, user=user, detail="login")


@receiver(user_login_failed, dispatch_uid="orthofuse-audit-login-failed")
def audit_login_failed(sender, credentials, request=None, **kwargs) -> None:
    """Keep the attempted user name (never the password) so failed attempts are searchable."""
    username = str((credentials or {}).get("username", ""))[:150]
    AuditEvent.objects.create(
        user=None,
        username=username,
        action=AuditEvent.Action.LOGIN_FAILED,
        detail="failed login",
        ip_address=client_ip(request),
        path=(request.get_full_path()[:500] if request is not None else ""),
    )
