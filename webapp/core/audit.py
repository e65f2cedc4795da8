"""Recording audit events. Every read or change of patient data calls :func:`record`."""

from __future__ import annotations

import ipaddress

from django.conf import settings
from django.http import HttpRequest

from webapp.core.models import AuditEvent


def _valid_ip(text: str) -> str | None:
    try:
        return str(ipaddress.ip_address(text.strip()))
    except ValueError:
        return None


def client_ip(request: HttpRequest | None) -> str | None:
    """The client address: REMOTE_ADDR, or behind ``ORTHOFUSE_TRUSTED_PROXIES`` = N reverse
    proxies the address the outermost of them saw (the N-th ``X-Forwarded-For`` entry from the
    right; entries further left are written by the client and never trusted)."""
    if request is None:
        return None
    remote = request.META.get("REMOTE_ADDR") or None
    hops = int(getattr(settings, "ORTHOFUSE_TRUSTED_PROXIES", 0) or 0)
    if hops <= 0:
        return remote
    forwarded = [part for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()]
    if len(forwarded) < hops:
        return remote  # not through the proxies: the peer itself is the client
    return _valid_ip(forwarded[-hops]) or remote


def record(
    request: HttpRequest | None,
    action: str,
    *,
    patient=None,
    obj=None,
    detail: str = "",
    user=None,
) -> AuditEvent:
    """Append one audit event. ``patient`` is a Patient (or None), ``obj`` any model instance."""
    actor = user if user is not None else getattr(request, "user", None)
    if actor is not None and not getattr(actor, "is_authenticated", False):
        actor = None
    return AuditEvent.objects.create(
        user=actor,
        username=getattr(actor, "username", "") or "",
        action=action,
        patient_id_ref=getattr(patient, "pk", None),
        patient_mrn=getattr(patient, "mrn", "") or "",
        object_type=type(obj).__name__ if obj is not None else "",
        object_id=str(getattr(obj, "pk", "")) if obj is not None else "",
        detail=detail[:500],
        ip_address=client_ip(request),
        path=(request.get_full_path()[:500] if request is not None else ""),
    )
