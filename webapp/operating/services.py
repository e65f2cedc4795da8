"""Intra-operative sessions: opening and closing one, the arrival hook a stored X-ray goes
through (:func:`on_xray_stored`), and pinning two shots as the planning views.

Every stored X-ray reaches the hook through the records signal ``xray_stored``
(:func:`arrival_receiver`): the DICOM listener sends it for each received frame, the web
upload job and ``import_xray`` once their X-ray is committed."""

from __future__ import annotations

from django.db import IntegrityError, transaction
from django.utils import timezone

from refusal import Refused
from webapp.core import audit
from webapp.operating.models import OperatingSession, SessionShot
from webapp.records.models import CTStudy, Patient, XrayImage


class SessionRefused(Refused):
    """A session request that cannot be done (message says why)."""


def open_session_for(patient: Patient) -> OperatingSession | None:
    """The patient's open session, if any."""
    return OperatingSession.objects.filter(patient=patient, closed_at__isnull=True).first()


def open_session(
    *, patient: Patient, operation: str, user, study: CTStudy | None = None, request=None
) -> tuple[OperatingSession, bool]:
    """Open a session for ``patient`` (the open one when there is one already); returns
    ``(session, created)``. Audited."""
    operation = " ".join((operation or "").split())
    if not operation or len(operation) > 200:
        raise SessionRefused("name the operation (1 to 200 characters)")
    if study is not None and (
        study.patient_id != patient.pk or study.status != CTStudy.Status.READY
    ):
        raise SessionRefused("the CT study must be a ready CT of this patient")
    existing = open_session_for(patient)
    if existing is not None:
        return existing, False
    try:
        with transaction.atomic():
            session = OperatingSession.objects.create(
                patient=patient, operation=operation, study=study, opened_by=user
            )
            audit.record(
                request, "create", patient=patient, obj=session, user=user,
                detail=f"intra-operative session opened: {operation}",
            )
    except IntegrityError:  # opened by someone else at the same moment
        return open_session_for(patient), False
    return session, True


def close_session(session: OperatingSession, *, user, request=None) -> None:
    """Close ``session`` (no more automatic registrations); closing twice is a no-op."""
    with transaction.atomic():
        changed = OperatingSession.objects.filter(pk=session.pk, closed_at__isnull=True).update(
            closed_at=timezone.now(), closed_by=user
        )
        if changed:
            audit.record(
                request, "update", patient=session.patient, obj=session, user=user,
                detail=f"intra-operative session closed: {session.operation}",
            )
    session.refresh_from_db()


def device_note(xray: XrayImage) -> str:
    """Why the shot's device is not calibrated, in words ('' when it is calibrated)."""
    carm = xray.carm
    if carm is None:
        return "no C-arm recorded for this shot: its geometry comes from the header alone"
    if carm.profiles.filter(status="active").exists():
        return ""
    if carm.needs_dewarping:
        return (f"uncalibrated device: C-arm {carm.name} (image intensifier) has no active "
                "calibration profile, so the shot cannot be dewarped")
    return (f"uncalibrated device: C-arm {carm.name} has no active calibration profile; "
            "the header geometry is used")


def arrival_receiver(sender, *, xray: XrayImage, user=None, **kwargs) -> None:
    """Receiver of ``webapp.records.signals.xray_stored``: the arrival hook. It raises like
    the hook itself; the sender decides what a failure means (the DICOM node retries a
    locked database, the upload paths log it)."""
    on_xray_stored(xray, user=user)


def on_xray_stored(xray: XrayImage, *, user=None, request=None) -> SessionShot | None:
    """The arrival hook: when ``xray``'s patient has an open session, make the X-ray a shot
    of it and queue its registration (once: a second call returns the same shot and starts
    nothing). None without an open session."""
    existing = SessionShot.objects.filter(xray=xray).first()
    if existing is not None:
        return existing
    session = open_session_for(xray.patient)
    if session is None:
        return None
    try:
        with transaction.atomic():
            shot = SessionShot.objects.create(session=session, xray=xray, device_note=device_note(xray))
            _start(shot, session, user, request)
    except IntegrityError:  # the same X-ray, hooked by a concurrent call
        return SessionShot.objects.filter(xray=xray).first()
    return shot


def _start(shot: SessionShot, session: OperatingSession, user, request) -> None:
    from webapp.xray_registration.services import RegistrationRefused, start_registration

    try:
        with transaction.atomic():
            shot.registration = start_registration(
                shot.xray, user=user, request=request, study=session.study
            )
    except RegistrationRefused as exc:
        shot.refusal = str(exc)[:500]
    shot.save(update_fields=["registration", "refusal"])


def pin_views(
    session: OperatingSession, *, shot_ids: list[int], user, request=None
):
    """The two-view plan of the two pinned shots: the patient's plan on exactly these two
    X-rays when there is one, else a new one. Returns ``(plan, created)``."""
    from webapp.planning.models import Plan
    from webapp.planning.services import create_plan

    ids = list(dict.fromkeys(int(i) for i in shot_ids))
    if len(ids) != 2:
        raise SessionRefused("pin exactly two shots as the planning views")
    shots = {s.pk: s for s in session.shots.select_related("xray").filter(pk__in=ids)}
    if len(shots) != 2:
        raise SessionRefused("both pinned shots must belong to this session")
    x1, x2 = shots[ids[0]].xray, shots[ids[1]].xray
    plan = (
        Plan.objects.filter(patient=session.patient, xray1=x1, xray2=x2).first()
        or Plan.objects.filter(patient=session.patient, xray1=x2, xray2=x1).first()
    )
    created = plan is None
    if created:
        name = f"{session.operation}: shots {x1.pk} and {x2.pk}"[:200]
        plan = create_plan(session.patient, user, name, x1, x2)
        audit.record(request, "create", patient=session.patient, obj=plan, user=user,
                     detail=f"plan {plan.name} from session {session.pk}")
    OperatingSession.objects.filter(pk=session.pk).update(plan=plan)
    session.plan = plan
    return plan, created
