"""Calibration pages: profile list, upload, QA review (activate / reject), phantoms, and
the dewarp action on an X-ray. Every signed-in user may look; CalibrationAdmins change."""

from __future__ import annotations

import json

import numpy as np
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from refusal import Refused
from webapp.calibration import services
from webapp.calibration.forms import CalibrationUploadForm
from webapp.calibration.models import CalibrationProfile
from webapp.core import audit
from webapp.core.reauth import recent_auth_required
from webapp.core.roles import CALIBRATION_ADMIN, SURGEON, has_role
from webapp.records.access import get_visible_or_404
from webapp.records.models import XrayImage


def _require_calibration_admin(user) -> None:
    if not has_role(user, CALIBRATION_ADMIN):
        raise PermissionDenied("only calibration admins can change calibrations")


@login_required
def profile_list(request: HttpRequest) -> HttpResponse:
    profiles = CalibrationProfile.objects.select_related("carm", "phantom", "calibrated_by")
    carm_id = request.GET.get("carm")
    if carm_id and carm_id.isdigit():
        profiles = profiles.filter(carm_id=int(carm_id))
    return render(
        request,
        "calibration/profile_list.html",
        {"profiles": profiles, "can_change": has_role(request.user, CALIBRATION_ADMIN)},
    )


@login_required
def profile_new(request: HttpRequest) -> HttpResponse:
    _require_calibration_admin(request.user)
    services.ensure_builtin_phantoms()
    form = CalibrationUploadForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        spacing = None
        if data.get("pixel_spacing_x_mm") is not None:
            spacing = (data["pixel_spacing_x_mm"], data["pixel_spacing_y_mm"])
        try:
            profile = services.start_calibration(
                data["carm"],
                data["phantom"],
                data["image"].read(),
                primary_angle_deg=data["primary_angle_deg"],
                secondary_angle_deg=data["secondary_angle_deg"],
                pixel_spacing_mm=spacing,
                user=request.user,
                request=request,
            )
        except services.CalibrationRefused as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, f"Calibration v{profile.version} of {profile.carm} is being computed.")
            return redirect("calibration:profile-detail", pk=profile.pk)
    return render(request, "calibration/profile_new.html", {"form": form})


def _job_for(profile: CalibrationProfile):
    from webapp.jobs.models import Job

    return (
        Job.objects.filter(kind="calibrate_carm", params__profile_id=profile.pk).order_by("-created_at").first()
    )


def qa_figures(profile: CalibrationProfile) -> dict:
    """Plotly-ready QA data: beads over the image, residual vectors, histogram, source."""
    data = profile.data or {}
    beads = data.get("beads", [])
    near = [b for b in beads if b.get("plane") == 0]
    residuals = [b["residual_px"] for b in near if b.get("used")]
    vectors = [
        {
            "id": b["id"],
            "x": b["expected_px"][0],
            "y": b["expected_px"][1],
            "dx": b["dewarped_px"][0] - b["expected_px"][0],
            "dy": b["dewarped_px"][1] - b["expected_px"][1],
            "used": b.get("used", False),
            "held_out": b.get("held_out", False),
        }
        for b in near
    ]
    detected = [
        {"id": b["id"], "x": b["detected_px"][0], "y": b["detected_px"][1], "plane": b["plane"], "used": b.get("used", False)}
        for b in beads
    ]
    return {
        "width": data.get("width"),
        "height": data.get("height"),
        "detected": detected,
        "vectors": vectors,
        "residuals_px": residuals,
        "pixel_spacing_mm": data.get("pixel_spacing_mm"),
        "source_mm": data.get("source_mm"),
        "source_uncertainty_mm": data.get("source_uncertainty_mm"),
    }


@login_required
def profile_detail(request: HttpRequest, pk: int) -> HttpResponse:
    profile = get_object_or_404(CalibrationProfile.objects.select_related("carm", "phantom"), pk=pk)
    data = profile.data or {}
    context = {
        "profile": profile,
        "data": data,
        "job": _job_for(profile),
        "can_change": has_role(request.user, CALIBRATION_ADMIN),
        "qa_json": qa_figures(profile) if data else None,
        "n_hidden": len(data.get("beads_hidden", [])),
        "n_far": data.get("beads_far_used"),
    }
    return render(request, "calibration/profile_detail.html", context)


@login_required
def profile_status(request: HttpRequest, pk: int) -> JsonResponse:
    profile = get_object_or_404(CalibrationProfile, pk=pk)
    return JsonResponse({"status": profile.status, "message": profile.message})


def _stored_pixels(profile: CalibrationProfile) -> np.ndarray:
    """The phantom image as the calibration saw it (device flags applied)."""
    from dicomio import read_xray

    carm = profile.carm
    with profile.image_file.open("rb") as handle:
        raw = handle.read()
    loaded = read_xray(
        raw,
        flip_horizontal=carm.flip_horizontal,
        flip_vertical=carm.flip_vertical,
        rotate_deg=int(carm.rotate_deg),
    )
    return np.asarray(loaded.pixels, dtype=np.float32)


@login_required
def profile_image(request: HttpRequest, pk: int) -> HttpResponse:
    """The phantom image as a windowed PNG at full size; ``?which=dewarped`` dewarps it."""
    from calibration.engine.dewarp import ProfileError, dewarp_image
    from webapp.xray_view import display_png

    profile = get_object_or_404(CalibrationProfile, pk=pk)
    try:
        pixels = _stored_pixels(profile)
        if request.GET.get("which") == "dewarped":
            if not profile.data:
                return HttpResponse("this profile has no distortion model yet", status=404, content_type="text/plain")
            pixels = dewarp_image(pixels.astype(np.float32), profile.data)
        png = display_png(pixels, "MONOCHROME2", max_side=max(pixels.shape))
    except (ValueError, ProfileError, OSError) as exc:
        return HttpResponse(f"image cannot be shown: {exc}", status=422, content_type="text/plain")
    return HttpResponse(png, content_type="image/png")


@login_required
def profile_attempt_image(request: HttpRequest, pk: int) -> HttpResponse:
    """A refused calibration's image with what it detected: blobs circled, coded beads
    crossed (:func:`calibration.refused_attempt.draw_attempt`)."""
    import cv2

    from calibration.refused_attempt import draw_attempt
    from webapp.xray_view import XrayUnavailable, display_uint8

    profile = get_object_or_404(CalibrationProfile, pk=pk)
    if profile.status != CalibrationProfile.Status.FAILED:
        return HttpResponse("only a refused calibration has this picture", status=404, content_type="text/plain")
    try:
        picture = draw_attempt(display_uint8(_stored_pixels(profile)), profile.attempt or {})
    except (ValueError, Refused, XrayUnavailable, OSError) as exc:
        return HttpResponse(f"image cannot be shown: {exc}", status=422, content_type="text/plain")
    ok, png = cv2.imencode(".png", picture)
    if not ok:
        return HttpResponse("image cannot be shown: PNG encoding failed", status=422, content_type="text/plain")
    return HttpResponse(png.tobytes(), content_type="image/png")


@login_required
def profile_json(request: HttpRequest, pk: int) -> HttpResponse:
    profile = get_object_or_404(CalibrationProfile, pk=pk)
    if not profile.data:
        return HttpResponse("this profile has no result yet", status=404, content_type="text/plain")
    response = HttpResponse(json.dumps(profile.data, indent=1), content_type="application/json")
    response["Content-Disposition"] = f'attachment; filename="profile-{profile.carm_id}-v{profile.version}.json"'
    return response


@login_required
@require_POST
@recent_auth_required
def profile_review(request: HttpRequest, pk: int) -> HttpResponse:
    _require_calibration_admin(request.user)
    profile = get_object_or_404(CalibrationProfile, pk=pk)
    decision = request.POST.get("decision")
    comment = request.POST.get("comment", "")
    try:
        if decision == "activate":
            services.activate_profile(profile, request.user, comment, request=request)
            messages.success(request, f"{profile} is now active.")
        elif decision == "reject":
            services.reject_profile(profile, request.user, comment, request=request)
            messages.success(request, f"{profile} was rejected.")
        else:
            messages.error(request, "choose activate or reject")
    except services.CalibrationRefused as exc:
        messages.error(request, str(exc))
    return redirect("calibration:profile-detail", pk=profile.pk)


@login_required
@require_POST
def xray_dewarp(request: HttpRequest, pk: int) -> HttpResponse:
    """Queue a dewarp job for an X-ray the user may see (surgeons and calibration admins)."""
    from webapp.jobs.services import submit_job

    xray = get_visible_or_404(XrayImage.objects.select_related("patient", "carm"), request.user, pk=pk)
    if not (has_role(request.user, SURGEON) or has_role(request.user, CALIBRATION_ADMIN)):
        raise PermissionDenied("only surgeons and calibration admins can dewarp images")
    choice = services.profile_for_xray(xray)
    if choice.profile is None:
        messages.error(request, f"Cannot dewarp: {choice.warning}.")
        return redirect("records:xray-detail", pk=xray.pk)
    job = submit_job("dewarp_xray", params={"xray_id": xray.pk}, user=request.user, patient=xray.patient, request=request)
    audit.record(request, "update", patient=xray.patient, obj=xray, detail=f"dewarp job #{job.pk}")
    note = f" Warning: {choice.warning}." if choice.warning else ""
    messages.success(request, f"Dewarping with {choice.profile} (job #{job.pk}).{note}")
    return redirect("records:xray-detail", pk=xray.pk)

