"""Registration pages: preparing a CT (training), the training page with its live loss
curve, registering an X-ray, and the registration page (overlay, opacity, DRR).

Every object is fetched through :mod:`webapp.records.access` (another care team's
records answer 404) and every view of patient data is audited.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from webapp.core.audit import record
from webapp.core.reauth import recent_auth_required
from webapp.core.roles import REVIEWER, SURGEON, has_role
from webapp.records.access import get_visible_or_404
from webapp.records.models import CTStudy, XrayImage
from webapp.xray_registration.forms import PrepareForm
from webapp.xray_registration.models import Registration, RegistrationModel
from webapp.xray_registration.services import (
    RegistrationRefused,
    settle_if_job_ended,
    start_registration,
    start_training,
)


def can_operate(user) -> bool:
    """Surgeons (and site admins) start training and registrations."""
    return has_role(user, SURGEON)


def _model(request, pk: int) -> RegistrationModel:
    return get_visible_or_404(
        RegistrationModel.objects.select_related("study__patient", "job"),
        request.user,
        patient_path="study__patient",
        pk=pk,
    )


def _registration(request, pk: int) -> Registration:
    return get_visible_or_404(
        Registration.objects.select_related(
            "xray__patient", "study", "model", "job", "reviewed_by"
        ),
        request.user,
        patient_path="xray__patient",
        pk=pk,
    )


@login_required
@require_POST
def study_prepare(request: HttpRequest, pk: int) -> HttpResponse:
    study = get_visible_or_404(CTStudy.objects.select_related("patient"), request.user, pk=pk)
    if not can_operate(request.user):
        raise PermissionDenied("only surgeons prepare CT studies for registration")
    form = PrepareForm(request.POST or {"preset": "quick"})
    preset = form.cleaned_data["preset"] if form.is_valid() else "quick"
    try:
        model = start_training(study, preset, user=request.user, request=request)
    except RegistrationRefused as exc:
        messages.error(request, f"Cannot prepare for registration: {exc}")
        return redirect("records:study-detail", study.pk)
    messages.success(request, f"Training a {model.preset} registration model for this CT.")
    return redirect("registration:model-detail", model.pk)


@login_required
def model_detail(request: HttpRequest, pk: int) -> HttpResponse:
    model = _model(request, pk)
    settle_if_job_ended(model)
    record(
        request, "view", patient=model.study.patient, obj=model, detail="registration model page"
    )
    return render(
        request,
        "registration_site/model_detail.html",
        {
            "model": model,
            "study": model.study,
            "patient": model.study.patient,
            "can_operate": can_operate(request.user),
            "registrations": model.registrations.select_related("xray")[:50],
        },
    )


def model_payload(model: RegistrationModel) -> dict:
    job = model.job
    return {
        "id": model.pk,
        "status": model.status,
        "status_display": model.get_status_display(),
        "preset": model.preset,
        "study": model.study_id,
        "curve": model.training_curve or [],
        "job": job.pk if job else None,
        "job_status": job.status if job else None,
        "progress": round(job.progress, 4) if job else None,
        "message": (job.error_line or job.message) if job else "",
        "training": (model.model_json or {}).get("training", {}),
    }


@login_required
@require_GET
def model_curve(request: HttpRequest, pk: int) -> JsonResponse:
    """The loss curve and status the training page polls."""
    model = _model(request, pk)
    settle_if_job_ended(model)
    return JsonResponse(model_payload(model))


@login_required
@require_POST
@recent_auth_required
def model_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    from webapp.jobs.services import cancel_job

    model = _model(request, pk)
    if not can_operate(request.user):
        raise PermissionDenied("only surgeons cancel training")
    if model.status == RegistrationModel.Status.TRAINING and model.job is not None:
        job = cancel_job(model.job, request.user, request=request)
        if job.status == job.Status.CANCELLED:
            RegistrationModel.objects.filter(pk=model.pk).update(
                status=RegistrationModel.Status.CANCELLED
            )
        messages.info(request, "Training cancel requested.")
    return redirect("registration:model-detail", model.pk)


@login_required
@require_POST
def xray_register(request: HttpRequest, pk: int) -> HttpResponse:
    xray = get_visible_or_404(
        XrayImage.objects.select_related("patient", "carm"), request.user, pk=pk
    )
    if not can_operate(request.user):
        raise PermissionDenied("only surgeons start registrations")
    try:
        reg = start_registration(xray, user=request.user, request=request)
    except RegistrationRefused as exc:
        messages.error(request, f"Cannot register: {exc}")
        return redirect("records:xray-detail", xray.pk)
    return redirect("registration:registration-detail", reg.pk)


def failure_advice(reg: Registration) -> str:
    """What to try after a refused registration: the engine's advice for the failed check
    (:func:`registration.engine.quality.advice_for`), stored with the run's stages."""
    from registration.engine.quality import advice_for

    quality = (reg.stages or {}).get("quality", {})
    advice = quality.get("advice") or advice_for(str((reg.quality or {}).get("failed_check") or ""))
    return advice[:1].upper() + advice[1:] + "." if advice else ""


def registration_context(request, reg: Registration) -> dict:
    xray = reg.xray
    stages = [
        (name, info.get("seconds"), {k: v for k, v in info.items() if k != "seconds"})
        for name, info in (reg.stages or {}).items()
        if isinstance(info, dict)
    ]
    gt = xray.ground_truth or {}
    return {
        "reg": reg,
        "xray": xray,
        "patient": xray.patient,
        "study": reg.study,
        "stages": stages,
        "quality": reg.quality or {},
        "advice": failure_advice(reg) if reg.status == "failed" else "",
        "has_ground_truth": bool(gt.get("T_cam_from_world")),
        "pose_rows": reg.T_cam_from_world or [],
        "is_reviewer": has_role(request.user, REVIEWER),
        "can_operate": can_operate(request.user),
    }


@login_required
def registration_detail(request: HttpRequest, pk: int) -> HttpResponse:
    reg = _registration(request, pk)
    settle_if_job_ended(reg)
    record(request, "view", patient=reg.xray.patient, obj=reg, detail="registration page")
    return render(
        request, "registration_site/registration_detail.html", registration_context(request, reg)
    )


@login_required
@require_GET
def registration_image(request: HttpRequest, pk: int, which: str) -> HttpResponse:
    """``xray`` (the registered image, windowed), ``overlay`` (bone edges in green over it)
    or ``drr`` (the DRR at the pose), as PNG."""
    from webapp.xray_registration.services import prepare_xray, xray_display_png

    reg = _registration(request, pk)
    if which == "overlay":
        field = reg.overlay_file
    elif which == "drr":
        field = reg.drr_file
    elif which == "xray":
        field = None
    else:
        raise Http404("unknown picture")
    if field is not None:
        if not field:
            raise Http404("no picture stored")
        try:
            with field.open("rb") as fh:
                data = fh.read()
        except OSError as exc:
            raise Http404("picture missing") from exc
    else:
        if reg.status != Registration.Status.OK:
            raise Http404("not registered")
        try:
            prepared = prepare_xray(reg.xray, dewarp=False)
            data = xray_display_png(prepared.pixels, prepared.photometric)
        except RegistrationRefused as exc:
            return HttpResponse(
                f"Picture unavailable: {exc}", status=422, content_type="text/plain"
            )
    record(
        request, "view", patient=reg.xray.patient, obj=reg, detail=f"registration picture ({which})"
    )
    response = HttpResponse(data, content_type="image/png")
    response["Cache-Control"] = "private, no-store"
    return response
