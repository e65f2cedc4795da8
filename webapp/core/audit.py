"""Recording audit events. Every read or change of patient data calls :func:`record`."""

from __future__ import annotations

from django.http import HttpRequest

from webapp.core.models import AuditEvent


def client_ip(request: HttpRequest | None) -> str | None:
    """The client address (REMOTE_ADDR; proxies must set it, we do not trust X-Forwarded-For)."""
    if request is None:
        return None
    return request.META.get("REMOTE_ADDR") or None


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
