"""Intra-operative session pages: the list with the open form, the session page and the JSON
it polls, closing, and pinning two shots as the planning views. Objects are fetched
through :mod:`webapp.records.access` (another care team's session is a 404); every read of
patient data is audited."""

from __future__ import annotations

import hashlib
import json
import time

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from refusal import Refused
from webapp.core.audit import record
from webapp.core.reauth import recent_auth_required
from webapp.core.roles import SURGEON, has_role
from webapp.operating import services
from webapp.operating.models import OperatingSession
from webapp.operating.tiles import session_payload
from webapp.records.access import get_visible_or_404, scope, visible_patients
from webapp.records.models import CTStudy, Patient


def can_operate(user) -> bool:
    """Surgeons (and site admins) open, close and pin."""
    return has_role(user, SURGEON)


def _session(request: HttpRequest, pk: int) -> OperatingSession:
    return get_visible_or_404(
        OperatingSession.objects.select_related("patient", "study", "plan"), request.user, pk=pk
    )


@login_required
@require_GET
def session_list(request: HttpRequest) -> HttpResponse:
    sessions = scope(
        OperatingSession.objects.select_related("patient", "opened_by"), request.user
    ).filter(closed_at__isnull=True)
    record(request, "view", detail="intra-operative session list")
    return render(
        request,
        "operating/session_list.html",
        {
            "sessions": sessions,
            "patients": visible_patients(request.user).order_by("mrn")[:500],
            "can_operate": can_operate(request.user),
        },
    )


@login_required
@require_POST
def session_open(request: HttpRequest) -> HttpResponse:
    if not can_operate(request.user):
        raise PermissionDenied("only surgeons open intra-operative sessions")
    try:
        patient = get_visible_or_404(Patient, request.user, pk=int(request.POST.get("patient", "")))
    except ValueError:
        messages.error(request, "Choose the patient.")
        return redirect("operating:list")
    study = None
    if request.POST.get("study"):
        study = CTStudy.objects.filter(
            pk=int(request.POST["study"]) if request.POST["study"].isdigit() else -1,
            patient=patient,
        ).first()
        if study is None:
            messages.error(request, "Cannot open the session: the CT study is not this patient's.")
            return redirect("operating:list")
    try:
        session, created = services.open_session(
            patient=patient, operation=request.POST.get("operation", ""), user=request.user,
            study=study, request=request,
        )
    except Refused as exc:
        messages.error(request, f"Cannot open the session: {exc}")
        return redirect("operating:list")
    if not created:
        messages.info(request, "This patient's session is already open.")
    return redirect("operating:session", session.pk)


@login_required
@require_GET
def session_page(request: HttpRequest, pk: int) -> HttpResponse:
    session = _session(request, pk)
    record(request, "view", patient=session.patient, obj=session, detail="session page")
    return render(
        request,
        "operating/session.html",
        {"session": session, "patient": session.patient, "can_operate": can_operate(request.user)},
    )


@login_required
@require_GET
def session_json(request: HttpRequest, pk: int) -> JsonResponse:
    """The shots of the session, polled by the page (static/js/operating_session.js)."""
    session = _session(request, pk)
    payload = session_payload(session)
    if _feed_read_is_new(request, session.pk, payload):
        record(request, "view", patient=session.patient, obj=session, detail="session shots (JSON)")
    response = JsonResponse(payload)
    response["Cache-Control"] = "private, no-store"
    return response


FEED_AUDIT_REPEAT_S = 300  # an unchanged feed is audited again after this long


def _now() -> float:
    """Wall-clock seconds (a seam for tests)."""
    return time.time()


def _feed_read_is_new(request: HttpRequest, session_pk: int, payload: dict) -> bool:
    """Whether this poll discloses something this browser session has not been audited for:
    the feed's content changed, or the last audited read of it is older than
    :data:`FEED_AUDIT_REPEAT_S`. The page polls every second; identical repeats are one
    disclosure, not one audit row a second."""
    digest = hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()
    seen = request.session.get("operating_feed_audit", {})
    last = seen.get(str(session_pk))
    now = _now()
    if last and last["digest"] == digest and now - last["at"] < FEED_AUDIT_REPEAT_S:
        return False
    seen[str(session_pk)] = {"digest": digest, "at": now}
    request.session["operating_feed_audit"] = seen
    return True


@login_required
@require_POST
@recent_auth_required
def session_close(request: HttpRequest, pk: int) -> HttpResponse:
    session = _session(request, pk)
    if not can_operate(request.user):
        raise PermissionDenied("only surgeons close intra-operative sessions")
    services.close_session(session, user=request.user, request=request)
    messages.success(request, "Session closed: new shots are no longer registered automatically.")
    return redirect("operating:session", session.pk)


@login_required
@require_POST
def session_pin(request: HttpRequest, pk: int) -> HttpResponse:
    """Pin two shots (checkboxes ``shot``) as the planning views: opens their plan."""
    session = _session(request, pk)
    if not can_operate(request.user):
        raise PermissionDenied("only surgeons plan")
    try:
        ids = [int(v) for v in request.POST.getlist("shot")]
    except ValueError:
        messages.error(request, "Cannot plan: pin two shots of this session.")
        return redirect("operating:session", session.pk)
    try:
        plan, created = services.pin_views(
            session, shot_ids=ids, user=request.user, request=request
        )
    except Refused as exc:  # (a ValueError too: caught apart so that its words are shown)
        messages.error(request, f"Cannot plan with these views: {exc}")
        return redirect("operating:session", session.pk)
    messages.success(request, f"Plan {plan.name} {'created' if created else 'opened'}.")
    return redirect("planning:plan", pk=plan.pk)
