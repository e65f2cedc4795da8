"""Record pages: patients, CT studies, X-rays, C-arms, uploads and audited downloads.

Every object that belongs to a patient is fetched through :mod:`webapp.records.access`
(``visible_patients``, ``scope``, ``get_visible_or_404``), so another team's patient answers
404 everywhere. Every page view of patient data, download, export and upload is recorded
with :func:`webapp.core.audit.record`.
"""

from __future__ import annotations

import logging

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
from webapp.records.uploads import (
    UploadRefused,
    cancel_series_choice,
    series_choice_job,
    start_ct_import,
    start_series_import,
    start_xray_import,
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


# --------------------------------------------------------------------------- uploads


def _uploader_patient(request: HttpRequest, pk: int) -> Patient:
    patient = get_visible_or_404(Patient, request.user, pk=pk)
    if not can_edit_records(request.user):
        raise PermissionDenied("Only surgeons and site admins upload images.")
    return patient


def _queued(request: HttpRequest, job, what: str) -> HttpResponse:
    messages.info(
        request, f"{what} received: job #{job.pk} imports it; this page shows its progress."
    )
    return redirect("jobs:job-detail", pk=job.pk)


@login_required
@require_POST
def ct_upload(request: HttpRequest, pk: int) -> HttpResponse:
    """Validate cheaply, stage the files and queue the import; the job page shows progress."""
    patient = _uploader_patient(request, pk)
    form = CTUploadForm(request.POST, request.FILES)
    if form.is_valid():
        try:
            job = start_ct_import(
                patient=patient,
                files=form.cleaned_data["files"],
                description=form.cleaned_data["description"],
                deidentify=form.cleaned_data["deidentify"],
                request=request,
            )
        except UploadRefused as exc:
            form.add_error("files", str(exc))
        else:
            return _queued(request, job, "CT upload")
    return _patient_page_with(request, patient, ct_form=form)


def _patient_page_with(request, patient, **forms) -> HttpResponse:
    response = render(
        request, "records/patient_detail.html", _patient_context(request, patient, **forms)
    )
    response.status_code = 400
    return response


@login_required
@require_http_methods(["GET", "POST"])
def ct_choose_series(request: HttpRequest, pk: int, token: str) -> HttpResponse:
    """The series choice after an import job found several series in the upload."""
    patient = _uploader_patient(request, pk)
    job = series_choice_job(patient=patient, token=token, user=request.user)
    if job is None:
        raise Http404("upload not found")
    if request.method == "POST" and "cancel" in request.POST:
        cancel_series_choice(job)
        record(
            request,
            A.DELETE,
            patient=patient,
            obj=job,
            detail="CT upload cancelled at the series choice",
        )
        messages.info(request, "Upload cancelled; the uploaded files were deleted.")
        return redirect("records:patient-detail", pk=patient.pk)
    series = job.result.get("series", [])
    form = SeriesChoiceForm(request.POST or None, series=series)
    if request.method == "POST" and form.is_valid():
        follow_up = start_series_import(
            choice_job=job, series_uid=form.cleaned_data["series_uid"], request=request
        )
        return _queued(request, follow_up, "Series choice")
    status = 400 if request.method == "POST" else 200
    context = {"patient": patient, "form": form, "series": series, "error": "", "token": token}
    return render(request, "records/ct_choose_series.html", context, status=status)


@login_required
@require_POST
def xray_upload(request: HttpRequest, pk: int) -> HttpResponse:
    """Validate cheaply, stage the file and queue the import; the job page shows progress."""
    patient = _uploader_patient(request, pk)
    form = XrayUploadForm(request.POST, request.FILES)
    if form.is_valid():
        try:
            job = start_xray_import(
                patient=patient,
                upload=form.cleaned_data["file"],
                carm=form.cleaned_data["carm"],
                description=form.cleaned_data["description"],
                request=request,
            )
        except UploadRefused as exc:
            form.add_error("file", str(exc))
        else:
            return _queued(request, job, "X-ray upload")
    return _patient_page_with(request, patient, xray_form=form)
