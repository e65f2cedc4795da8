"""Phantom pages: the list, adding one (upload a phantom.json or draw one from a few
parameters, with a live preview of the drawing), and its expected projection before the
first calibration. Everyone signed in sees the list; only calibration admins
(:data:`webapp.core.roles.CALIBRATION_ADMIN`, and site admins) add phantoms, see their
details and previews. Adding one is audited (services.create_phantom)."""

from __future__ import annotations

import json

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render

from calibration.phantom_design import draw_phantom
from calibration.phantom_preview import NOMINAL_SDD_MM, preview_png
from refusal import Refused
from webapp.calibration import services
from webapp.calibration.forms import PhantomDrawForm, PhantomForm
from webapp.calibration.models import Phantom
from webapp.core.roles import CALIBRATION_ADMIN, has_role

PREVIEW_NAME = "preview"


def can_manage_phantoms(user) -> bool:
    return has_role(user, CALIBRATION_ADMIN)


def _require_manager(user) -> None:
    if not can_manage_phantoms(user):
        raise PermissionDenied("only calibration admins can add or inspect phantoms")


def _text(message: str, status: int) -> HttpResponse:
    return HttpResponse(message, status=status, content_type="text/plain; charset=utf-8")


def _upload(request: HttpRequest, form: PhantomForm) -> Phantom | None:
    if not form.is_valid():
        return None
    try:
        return services.create_phantom(
            form.cleaned_data["name"], form.cleaned_data["definition"], request.user, request=request
        )
    except services.CalibrationRefused as exc:
        form.add_error("name" if "already exists" in str(exc) else "definition", str(exc))
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
    can_change = can_manage_phantoms(request.user)
    if request.method == "POST":
        _require_manager(request.user)
    posted = request.method == "POST"
    drawing = posted and "kind" in request.POST
    upload_form = draw_form = None
    if can_change:
        uploading = posted and not drawing
        upload_form = PhantomForm(request.POST if uploading else None, request.FILES if uploading else None)
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
    design = phantom.definition.get("design")  # the parameters of a drawn phantom
    context = {
        "phantom": phantom,
        "design": design if isinstance(design, dict) else None,
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
    except (Refused, ValueError) as exc:
        return _text(f"no preview: {exc}", 422)
    return HttpResponse(png, content_type="image/png")


def _form_problems(form: PhantomDrawForm) -> str:
    """The form's errors in one line, each after the label of its field."""
    parts = []
    for field, errors in form.errors.items():
        label = form.fields[field].label or field.replace("_", " ") if field in form.fields else ""
        parts.append(f"{label}: {' '.join(errors)}" if label else " ".join(errors))
    return "; ".join(parts)


@login_required
def phantom_draft_preview(request: HttpRequest) -> HttpResponse:
    """PNG of the expected projection of a phantom drawn from the drawing form's fields
    (query string), before it is stored; 422 with the reason in words otherwise."""
    _require_manager(request.user)
    query = request.GET.copy()
    if not query.get("name", "").strip():
        query["name"] = PREVIEW_NAME
    form = PhantomDrawForm(query)
    if not form.is_valid():
        return _text(f"no preview: {_form_problems(form)}", 422)
    try:
        png = preview_png(draw_phantom(form.design()))
    except (Refused, ValueError) as exc:
        return _text(f"no preview: {exc}", 422)
    return HttpResponse(png, content_type="image/png")


@login_required
def phantom_json(request: HttpRequest, pk: int) -> HttpResponse:
    _require_manager(request.user)
    phantom = get_object_or_404(Phantom, pk=pk)
    response = HttpResponse(json.dumps(phantom.definition, indent=1), content_type="application/json")
    response["Content-Disposition"] = f'attachment; filename="phantom-{phantom.pk}.json"'
    return response
