"""Review pages (Reviewer role): a patient's registrations, one registration's review
(accept/reject with a comment, 2D-3D landmarks measuring the projected error), and the
accuracy dashboard with its JSON data and audited CSV export.

Objects come through :mod:`webapp.records.access` (another care team's answer 404);
non-reviewers get 403 on every review page.
"""

from __future__ import annotations

import csv

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from webapp.core.audit import record
from webapp.core.reauth import recent_auth_required
from webapp.core.roles import REVIEWER, has_role
from webapp.planning.services import outcomes_overview
from webapp.records.access import get_visible_or_404, visible_patients
from webapp.records.models import Patient
from webapp.review.decisions import add_landmark, review_registration
from webapp.review.services import CSV_COLUMNS, filter_registrations, registration_row, summary
from webapp.xray_registration.forms import DashboardFilterForm, LandmarkForm, ReviewForm
from webapp.xray_registration.models import Registration
from webapp.xray_registration.services import RegistrationRefused
from webapp.xray_registration.views import registration_context


def _require_reviewer(user) -> None:
    if not has_role(user, REVIEWER):
        raise PermissionDenied("Only reviewers may review registrations.")


def _registration(request, pk: int) -> Registration:
    return get_visible_or_404(
        Registration.objects.select_related(
            "xray__patient", "xray__carm", "study", "model", "reviewed_by"
        ),
        request.user,
        patient_path="xray__patient",
        pk=pk,
    )


def _filters(request) -> tuple[DashboardFilterForm, dict]:
    form = DashboardFilterForm(request.GET or None)
    data = form.cleaned_data if form.is_valid() else {}
    return form, {k: v for k, v in data.items() if v not in (None, "")}


@login_required
def dashboard(request: HttpRequest) -> HttpResponse:
    _require_reviewer(request.user)
    form, filters = _filters(request)
    rows = [registration_row(r) for r in filter_registrations(request.user, filters)[:500]]
    record(request, "view", detail=f"review dashboard {filters}"[:500])
    patients = visible_patients(request.user).filter(xrays__registrations__isnull=False).distinct()
    outcome_rows, outcome_summary = outcomes_overview(request.user)
    return render(
        request,
        "review/dashboard.html",
        {
            "form": form,
            "rows": rows,
            "summary": summary(rows),
            "patients": patients.order_by("mrn"),
            "query": request.GET.urlencode(),
            "n_outcomes": len(outcome_rows),
            "outcome_summary": outcome_summary,
        },
    )


@login_required
@require_GET
def dashboard_data(request: HttpRequest) -> JsonResponse:
    _require_reviewer(request.user)
    _form, filters = _filters(request)
    rows = [registration_row(r) for r in filter_registrations(request.user, filters)[:2000]]
    record(request, "view", detail=f"review dashboard data ({len(rows)} rows) {filters}"[:500])
    return JsonResponse({"rows": rows, "summary": summary(rows)})


def _csv_safe(value) -> object:
    """Defuse spreadsheet formulas in free text (a cell starting with = + - @)."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return "" if value is None else value


@login_required
@require_GET
def export_csv(request: HttpRequest) -> HttpResponse:
    _require_reviewer(request.user)
    _form, filters = _filters(request)
    regs = list(filter_registrations(request.user, filters))
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="registrations.csv"'
    writer = csv.writer(response)
    writer.writerow(CSV_COLUMNS)
    for reg in regs:
        row = registration_row(reg)
        writer.writerow([_csv_safe(row[c]) for c in CSV_COLUMNS])
    patients = {reg.xray.patient_id for reg in regs}
    patient = (
        Patient.objects.filter(pk=next(iter(patients))).first() if len(patients) == 1 else None
    )
    record(
        request,
        "export",
        patient=patient,
        detail=f"registrations CSV ({len(regs)} rows) {filters}"[:500],
    )
    return response


@login_required
def patient_registrations(request: HttpRequest, pk: int) -> HttpResponse:
    patient = get_visible_or_404(Patient, request.user, pk=pk)
    _require_reviewer(request.user)
    regs = (
        Registration.objects.filter(xray__patient=patient)
        .select_related("xray", "study", "reviewed_by")
        .prefetch_related("landmarks")
        .order_by("-created_at", "-id")
    )
    record(request, "view", patient=patient, detail="registrations for review")
    return render(
        request,
        "review/patient.html",
        {
            "patient": patient,
            "rows": [(r, registration_row(r)) for r in regs],
        },
    )


@login_required
def registration_review(request: HttpRequest, pk: int) -> HttpResponse:
    reg = _registration(request, pk)
    _require_reviewer(request.user)
    record(request, "view", patient=reg.xray.patient, obj=reg, detail="registration review page")
    ctx = registration_context(request, reg)
    ctx.update(
        {
            "review_form": ReviewForm(initial={"decision": "accepted"}),
            "landmark_form": LandmarkForm(),
            "landmarks": reg.landmarks.order_by("created_at"),
        }
    )
    return render(request, "review/registration.html", ctx)


@login_required
@require_POST
def decide(request: HttpRequest, pk: int) -> HttpResponse:
    reg = _registration(request, pk)
    _require_reviewer(request.user)
    form = ReviewForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose accept or reject.")
        return redirect("review:registration", reg.pk)
    try:
        review_registration(
            reg,
            request.user,
            form.cleaned_data["decision"],
            form.cleaned_data["comment"],
            request=request,
        )
    except RegistrationRefused as exc:
        messages.error(request, f"Review not saved: {exc}")
    else:
        messages.success(
            request, f"Registration #{reg.pk} {reg.get_review_status_display().lower()}."
        )
    return redirect("review:registration", reg.pk)


@login_required
@require_POST
def landmark_add(request: HttpRequest, pk: int) -> HttpResponse:
    reg = _registration(request, pk)
    _require_reviewer(request.user)
    form = LandmarkForm(request.POST)
    if not form.is_valid():
        messages.error(request, "A landmark needs u, v (px) and x, y, z (LPS mm) as numbers.")
        return redirect("review:registration", reg.pk)
    d = form.cleaned_data
    try:
        pair = add_landmark(
            reg,
            request.user,
            d["u_px"],
            d["v_px"],
            (d["x_mm"], d["y_mm"], d["z_mm"]),
            request=request,
        )
    except RegistrationRefused as exc:
        messages.error(request, f"Landmark not saved: {exc}")
    else:
        messages.success(
            request,
            f"Landmark saved: projected error {pair.error_px:.2f} px, "
            f"{pair.error_mm_at_detector:.2f} mm at the detector.",
        )
    return redirect("review:registration", reg.pk)


@login_required
@require_POST
@recent_auth_required
def landmark_delete(request: HttpRequest, pk: int, landmark_pk: int) -> HttpResponse:
    reg = _registration(request, pk)
    _require_reviewer(request.user)
    pair = reg.landmarks.filter(pk=landmark_pk).first()
    if pair is not None:
        record(
            request,
            "delete",
            patient=reg.xray.patient,
            obj=pair,
            detail=f"landmark removed from registration {reg.pk}",
        )
        pair.delete()
        messages.info(request, "Landmark removed.")
    return redirect("review:registration", reg.pk)
