"""What the session page shows for each shot (the JSON it polls every second)."""

from __future__ import annotations

from django.urls import reverse

from webapp.operating.models import OperatingSession, SessionShot

FINISHED_JOB = ("succeeded", "failed", "cancelled")


def _state(shot: SessionShot) -> tuple[str, str]:
    """(state, words): waiting / registering / registered / refused, and why."""
    from webapp.xray_registration.services import settle_if_job_ended

    reg = shot.registration
    if reg is None:
        if shot.refusal:
            return "refused", f"Registration not started: {shot.refusal}"
        return "waiting", "waiting for its registration to start"
    settle_if_job_ended(reg)
    if reg.status == "ok":
        if reg.overlay_file:
            return "registered", reg.message or "registered"
        return "registered", "registered (no overlay stored)"
    if reg.status == "failed":
        return "refused", f"Registration refused: {reg.message or 'no reason recorded'}"
    job = reg.job
    if job is not None and job.status == "running":
        return "registering", job.message or "registering"
    return "registering", "waiting for a worker"


def shot_tile(shot: SessionShot) -> dict:
    """One tile: the X-ray, its device note, its registration state and overlay URL."""
    xray, reg = shot.xray, shot.registration
    state, words = _state(shot)
    job = reg.job if reg is not None else None
    overlay = (
        reverse("registration:registration-image", args=[reg.pk, "overlay"])
        if reg is not None and reg.status == "ok" and reg.overlay_file
        else None
    )
    return {
        "id": shot.pk,
        "xray_id": xray.pk,
        "description": xray.description,
        "carm": xray.carm.name if xray.carm else "",
        "angles": [xray.primary_angle_deg, xray.secondary_angle_deg],
        "arrived_at": shot.arrived_at.isoformat(),
        "device_note": shot.device_note,
        "state": state,
        "message": words,
        "progress": round(job.progress, 3) if job is not None else None,
        "preview_url": reverse("records:xray-preview", args=[xray.pk]),
        "overlay_url": overlay,
        "registration_id": reg.pk if reg is not None else None,
        "registration_url": (
            reverse("registration:registration-detail", args=[reg.pk]) if reg else None
        ),
        "mode": (reg.quality or {}).get("mode") if reg is not None else None,
        "seconds": reg.seconds if reg is not None else None,
    }


def session_payload(session: OperatingSession) -> dict:
    """The session and its shots, oldest first."""
    shots = session.shots.select_related(
        "xray__carm", "registration__job"
    ).order_by("arrived_at", "id")
    return {
        "id": session.pk,
        "operation": session.operation,
        "open": session.is_open,
        "closed_at": session.closed_at.isoformat() if session.closed_at else None,
        "plan_url": reverse("planning:plan", args=[session.plan_id]) if session.plan_id else None,
        "shots": [shot_tile(s) for s in shots],
    }
