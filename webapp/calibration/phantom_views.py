"""Phantom pages: the list, adding one (upload a phantom.json or draw one from a few
parameters), and its expected projection before the first calibration. Everyone signed
in sees the list; only C-arm managers (calibration admins) add phantoms and see details."""

from __future__ import annotations

import json

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render

from calibration.engine.phantom import PhantomError
from calibration.phantom_preview import NOMINAL_SDD_MM, preview_png
from webapp.calibration import services
from webapp.calibration.forms import PhantomDrawForm, PhantomForm
from webapp.calibration.models import Phantom
from webapp.records.access import can_manage_carms


def _require_manager(user) -> None:
    if not can_manage_carms(user):
        raise PermissionDenied("only calibration admins can add or inspect phantoms")


def _upload(request: HttpRequest, form: PhantomForm) -> Phantom | None:
    if not form.is_valid():
        return None
    try:
        return services.create_phantom(form.cleaned_data["name"], form.cleaned_data["definition"], request.user)
    except services.CalibrationRefused as exc:
        form.add_error("definition", str(exc))
        return None


def _draw(request: HttpRequest, form: PhantomDrawForm) -> Phantom | None:
    if not form.is_valid():
        return None
    try:
        return services.create_drawn_phantom(design=form.design(), user=request.user, request=request)
    except services.CalibrationRefused as exc:
        form.add_error(None, str(exc))
        return None


@login_required
def phantom_list(request: HttpRequest) -> HttpResponse:
    services.ensure_builtin_phantoms()
    can_change = can_manage_carms(request.user)
    if request.method == "POST":
        _require_manager(request.user)
    drawing = request.method == "POST" and "kind" in request.POST
    upload_form = draw_form = None
    if can_change:
        upload_form = PhantomForm(None if drawing else (request.POST or None), None if drawing else (request.FILES or None))
        draw_form = PhantomDrawForm(request.POST if drawing else None)
    if request.method == "POST":
        phantom = _draw(request, draw_form) if drawing else _upload(request, upload_form)
        if phantom is not None:
            messages.success(request, f"Phantom {phantom.name} added ({phantom.summary}).")
            return redirect("calibration:phantom-detail", pk=phantom.pk)
    return render(
        request,
        "calibration/phantom_list.html",
        {"phantoms": Phantom.objects.all(), "form": upload_form, "draw_form": draw_form, "can_change": can_change},
    )


@login_required
def phantom_detail(request: HttpRequest, pk: int) -> HttpResponse:
    _require_manager(request.user)
    phantom = get_object_or_404(Phantom, pk=pk)
    context = {
        "phantom": phantom,
        "design": phantom.definition.get("design"),
        "n_profiles": phantom.profiles.count(),
        "sdd_mm": NOMINAL_SDD_MM,
    }
    return render(request, "calibration/phantom_detail.html", context)


@login_required
def phantom_preview(request: HttpRequest, pk: int) -> HttpResponse:
    """PNG of the phantom's expected projection through a nominal C-arm camera."""
    _require_manager(request.user)
    phantom = get_object_or_404(Phantom, pk=pk)
    try:
        png = preview_png(phantom.definition)
    except PhantomError as exc:
        return HttpResponse(f"no preview: {exc}", status=422, content_type="text/plain")
    return HttpResponse(png, content_type="image/png")


@login_required
def phantom_json(request: HttpRequest, pk: int) -> HttpResponse:
    _require_manager(request.user)
    phantom = get_object_or_404(Phantom, pk=pk)
    response = HttpResponse(json.dumps(phantom.definition, indent=1), content_type="application/json")
    response["Content-Disposition"] = f'attachment; filename="phantom-{phantom.pk}.json"'
    return response
