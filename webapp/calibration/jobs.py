"""Calibration job handlers: computing a profile from a phantom image, dewarping an X-ray."""

from __future__ import annotations

from django.urls import reverse

from webapp.calibration.models import CalibrationProfile
from webapp.calibration.services import (
    CalibrationRefused,
    dewarp_xray,
    record_refusal,
    run_calibration,
)
from webapp.jobs.registry import JobError, register
from webapp.records.models import XrayImage


@register("calibrate_carm", queue="cpu", soft_time_limit=300, label="C-arm calibration")
def calibrate_carm(job, ctx) -> dict:
    profile = CalibrationProfile.objects.select_related("carm", "phantom").filter(
        pk=job.params.get("profile_id")
    ).first()
    if profile is None:
        raise JobError("the calibration profile no longer exists")
    ctx.progress(0.1, "detecting and identifying beads")
    try:
        with ctx.stage("calibrate"):
            run_calibration(profile, job.params.get("pixel_spacing_mm"))
    except CalibrationRefused as exc:
        record_refusal(profile, exc)
        raise JobError(f"calibration refused: {exc}") from None
    ctx.progress(1.0, profile.message)
    return {
        "profile_id": profile.pk,
        "result_url": reverse("calibration:profile-detail", args=[profile.pk]),
        "result_label": "Open the calibration",
        "version": profile.version,
        "rms_mm": profile.rms_mm,
        "beads_used": profile.beads_used,
    }


@register("dewarp_xray", queue="cpu", soft_time_limit=120, label="X-ray dewarping")
def dewarp_xray_job(job, ctx) -> dict:
    xray = XrayImage.objects.select_related("carm").filter(pk=job.params.get("xray_id")).first()
    if xray is None:
        raise JobError("the X-ray no longer exists")
    ctx.progress(0.2, "dewarping")
    try:
        with ctx.stage("dewarp"):
            info = dewarp_xray(xray)
    except CalibrationRefused as exc:
        raise JobError(str(exc)) from None
    ctx.progress(1.0, info.get("warning") or "done")
    return {"xray_id": xray.pk, **info}
