"""Record pages: patients, CT studies, X-rays, C-arms, uploads and audited downloads.

Every object that belongs to a patient is fetched through :mod:`webapp.records.access`
(``visible_patients``, ``scope``, ``get_visible_or_404``), so another team's patient answers
404 everywhere. Every page view of patient data, download, export and upload is recorded
with :func:`webapp.core.audit.record`.
"""

from __future__ import annotations

import logging
import secrets
import shutil
import tempfile
import time
from pathlib import Path

from django.apps import apps
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Count, Q
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from webapp.core.audit import record
from webapp.core.models import AuditEvent
from webapp.records.access import (
    can_edit_records,
    get_visible_or_404,
    scope,
    visible_patients,
)
from webapp.records.forms import (
    MRN_TAKEN,
    CTUploadForm,
    PatientForm,
    SeriesChoiceForm,
    XrayUploadForm,
)
from webapp.records.models import CArm, CTStudy, Patient, XrayImage
from webapp.records.upload_staging import (
    STAGING_SESSION_KEY,
    display_name,
    forget_staged,
    purge_stale_staging,
    refusal_message,
    run_ct_import,
    staged_upload,
    staging_root,
    with_client_names,
    write_uploads,
)

log = logging.getLogger(__name__)

A = AuditEvent.Action


# --------------------------------------------------------------------------- patients


@login_required
def patient_list(request: HttpRequest) -> HttpResponse:
    query = (request.GET.get("q") or "").strip()[:100]
    patients = visible_patients(request.user).prefetch_related("care_teams")
    if query:
        words = query.split()
        for word in words:
            patients = patients.filter(
                Q(mrn__icontains=word)
                | Q(family_name__icontains=word)
                | Q(given_name__icontains=word)
            )
    patients = patients.annotate(
        n_studies=Count("ct_studies", distinct=True), n_xrays=Count("xrays", distinct=True)
    )
    page = Paginator(patients.order_by("family_name", "given_name", "mrn"), 50).get_page(
        request.GET.get("page")
    )
    record(request, A.VIEW, detail=f"patient list q={query!r} page={page.number}")
    return render(
        request,
        "records/patient_list.html",
        {"page": page, "query": query, "can_edit": can_edit_records(request.user)},
    )


@login_required
@require_http_methods(["GET", "POST"])
def patient_create(request: HttpRequest) -> HttpResponse:
    if not can_edit_records(request.user):
        raise PermissionDenied("Only surgeons and site admins create patients.")
    form = PatientForm(request.POST or None, user=request.user)
    if request.method == "POST" and form.is_valid():
        patient = form.save()
        record(request, A.CREATE, patient=patient, obj=patient, detail="patient created")
        messages.success(request, f"Patient {patient.mrn} created.")
        return redirect("records:patient-detail", pk=patient.pk)
    if request.method == "POST" and MRN_TAKEN in form.errors.get("mrn", []):
        record(request, A.CREATE, detail="patient create refused: the MRN is already registered")
    status = 400 if request.method == "POST" else 200
    return render(request, "records/patient_form.html", {"form": form}, status=status)


def _plans_for(patient: Patient) -> list:
    """Plans of the patient when the planning app defines a Plan model (else empty)."""
    try:
        model = apps.get_model("planning", "Plan")
    except LookupError:
        return []
    if not any(field.name == "patient" for field in model._meta.get_fields()):
        return []
    return list(model.objects.filter(patient=patient)[:50])


def _jobs_for(patient: Patient) -> list:
    from webapp.jobs.models import Job

    return list(Job.objects.filter(patient=patient).select_related("created_by")[:50])


def _patient_context(request: HttpRequest, patient: Patient, **extra) -> dict:
    context = {
        "patient": patient,
        "studies": scope(CTStudy.objects.filter(patient=patient), request.user),
        "xrays": scope(XrayImage.objects.filter(patient=patient), request.user).select_related(
            "carm"
        ),
        "plans": _plans_for(patient),
        "jobs": _jobs_for(patient),
        "can_edit": can_edit_records(request.user),
        "ct_form": CTUploadForm(),
        "xray_form": XrayUploadForm(),
        "has_carms": CArm.objects.exists(),
    }
    context.update(extra)
    return context


@login_required
def patient_detail(request: HttpRequest, pk: int) -> HttpResponse:
    patient = get_visible_or_404(Patient, request.user, pk=pk)
    record(request, A.VIEW, patient=patient, obj=patient, detail="patient detail")
    return render(request, "records/patient_detail.html", _patient_context(request, patient))


# --------------------------------------------------------------------------- CT upload


@login_required
@require_POST
def ct_upload(request: HttpRequest, pk: int) -> HttpResponse:
    patient = get_visible_or_404(Patient, request.user, pk=pk)
    if not can_edit_records(request.user):
        raise PermissionDenied("Only surgeons and site admins upload images.")
    form = CTUploadForm(request.POST, request.FILES)
    if not form.is_valid():
        return _patient_page_with(request, patient, ct_form=form)

    root = staging_root()
    purge_stale_staging(root)
    token = secrets.token_urlsafe(24)
    folder = root / token
    folder.mkdir(mode=0o700)
    keep = False
    try:
        paths = write_uploads(form.cleaned_data["files"], folder)
        names = [display_name(upload.name) for upload in form.cleaned_data["files"]]
        outcome, value = run_ct_import(
            request,
            patient,
            paths,
            series_uid=None,
            deidentify=form.cleaned_data["deidentify"],
            description=form.cleaned_data["description"],
        )
        if outcome == "multiple":
            keep = True
            staging = request.session.get(STAGING_SESSION_KEY, {})
            staging[token] = {
                "patient": patient.pk,
                "files": [p.name for p in paths],
                "names": names,
                "deidentify": form.cleaned_data["deidentify"],
                "description": form.cleaned_data["description"],
                "series": value,
                "created": time.time(),
            }
            request.session[STAGING_SESSION_KEY] = staging
            return redirect("records:ct-choose-series", pk=patient.pk, token=token)
        if outcome == "refused":
            form.add_error("files", with_client_names(value, names))
            return _patient_page_with(request, patient, ct_form=form)
        messages.success(request, f"CT study imported: {value}.")
        return redirect("records:study-detail", pk=value.pk)
    finally:
        if not keep:
            shutil.rmtree(folder, ignore_errors=True)


def _patient_page_with(request, patient, **forms) -> HttpResponse:
    response = render(
        request, "records/patient_detail.html", _patient_context(request, patient, **forms)
    )
    response.status_code = 400
    return response


@login_required
@require_http_methods(["GET", "POST"])
def ct_choose_series(request: HttpRequest, pk: int, token: str) -> HttpResponse:
    patient = get_visible_or_404(Patient, request.user, pk=pk)
    if not can_edit_records(request.user):
        raise PermissionDenied("Only surgeons and site admins upload images.")
    entry, folder = staged_upload(request, token)
    if entry["patient"] != patient.pk:
        raise Http404("upload not found")
    if request.method == "POST" and "cancel" in request.POST:
        forget_staged(request, token)
        messages.info(request, "Upload cancelled; the uploaded files were deleted.")
        return redirect("records:patient-detail", pk=patient.pk)
    form = SeriesChoiceForm(request.POST or None, series=entry["series"])
    error = ""
    if request.method == "POST" and form.is_valid():
        paths = [folder / name for name in entry["files"]]
        outcome, value = run_ct_import(
            request,
            patient,
            paths,
            series_uid=form.cleaned_data["series_uid"],
            deidentify=entry["deidentify"],
            description=entry["description"],
        )
        if outcome == "ok":
            forget_staged(request, token)
            messages.success(request, f"CT study imported: {value}.")
            return redirect("records:study-detail", pk=value.pk)
        if outcome == "refused":
            error = with_client_names(value, entry.get("names", []))
        else:
            error = "The chosen series still contains several series; choose another."
    status = 400 if request.method == "POST" else 200
    return render(
        request,
        "records/ct_choose_series.html",
        {
            "patient": patient,
            "form": form,
            "series": entry["series"],
            "error": error,
            "token": token,
        },
        status=status,
    )


# --------------------------------------------------------------------------- X-ray upload


@login_required
@require_POST
def xray_upload(request: HttpRequest, pk: int) -> HttpResponse:
    patient = get_visible_or_404(Patient, request.user, pk=pk)
    if not can_edit_records(request.user):
        raise PermissionDenied("Only surgeons and site admins upload images.")
    form = XrayUploadForm(request.POST, request.FILES)
    if not form.is_valid():
        return _patient_page_with(request, patient, xray_form=form)
    upload = form.cleaned_data["file"]
    with tempfile.TemporaryDirectory(prefix="orthofuse-xray-") as tmp:
        path = write_uploads([upload], Path(tmp))[0]
        from webapp.records.xray_import import import_xray

        try:
            xray = import_xray(
                path,
                patient,
                carm=form.cleaned_data["carm"],
                user=request.user,
                description=form.cleaned_data["description"],
            )
        except (ValueError, OSError, MemoryError) as exc:
            form.add_error(
                "file", with_client_names(refusal_message(exc), [display_name(upload.name)])
            )
            return _patient_page_with(request, patient, xray_form=form)
    record(request, A.CREATE, patient=patient, obj=xray, detail="X-ray web upload")
    messages.success(request, f"X-ray imported: {xray}.")
    return redirect("records:xray-detail", pk=xray.pk)


