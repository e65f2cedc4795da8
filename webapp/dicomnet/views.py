"""Pages of the DICOM network: a patient's CT series on the PACS (search and pull), and the
buttons that send a registration or a plan version to the PACS. Each starts a job and goes
to its page (progress bar); refusals come back as one line."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from webapp.core.audit import record
from webapp.dicomnet.pull import PullRefused, search_patient, submit_pull
from webapp.dicomnet.results import ResultRefused
from webapp.dicomnet.send import submit_send
from webapp.jobs.registry import JobError
from webapp.planning.models import PlanVersion
from webapp.records.access import can_edit_records, get_visible_or_404
from webapp.records.models import Patient
from webapp.xray_registration.models import Registration


def _editor(request: HttpRequest) -> None:
    if not can_edit_records(request.user):
        raise PermissionDenied("Only surgeons and site admins use the PACS.")


@login_required
def patient_pacs(request: HttpRequest, pk: int) -> HttpResponse:
    """The patient's CT series on each configured PACS, each with a Pull button."""
    patient = get_visible_or_404(Patient, request.user, pk=pk)
    error, answers = "", []
    try:
        answers = search_patient(patient)
    except PullRefused as exc:
        error = str(exc)
    record(request, "view", patient=patient, obj=patient, detail="PACS search for CT series")
    return render(request, "dicomnet/patient_pacs.html", {
        "patient": patient, "answers": answers, "error": error,
        "can_edit": can_edit_records(request.user),
    })


@login_required
@require_POST
def pull(request: HttpRequest, pk: int) -> HttpResponse:
    patient = get_visible_or_404(Patient, request.user, pk=pk)
    _editor(request)
    expected = request.POST.get("instances", "")
    try:
        job = submit_pull(patient, request.POST.get("endpoint", ""),
                          request.POST.get("study_uid", ""), request.POST.get("series_uid", ""),
                          expected=int(expected) if expected.isdigit() else None,
                          request=request)
    except (PullRefused, JobError) as exc:
        messages.error(request, str(exc))
        return redirect("dicomnet:patient-pacs", pk=patient.pk)
    return redirect("jobs:job-detail", pk=job.pk)


def _back(request: HttpRequest) -> str:
    """The page the button was on (this site only), else the home page."""
    referer = request.META.get("HTTP_REFERER", "")
    ok = url_has_allowed_host_and_scheme(referer, allowed_hosts={request.get_host()},
                                         require_https=request.is_secure())
    return referer if ok else "/"


def _send(request: HttpRequest, **target) -> HttpResponse:
    _editor(request)
    try:
        job = submit_send(request=request, **target)
    except (ResultRefused, JobError) as exc:
        messages.error(request, str(exc))
        return redirect(_back(request))
    return redirect("jobs:job-detail", pk=job.pk)


@login_required
@require_POST
def send_registration(request: HttpRequest, pk: int) -> HttpResponse:
    reg = get_visible_or_404(Registration, request.user, patient_path="xray__patient", pk=pk)
    return _send(request, registration_id=reg.pk)


@login_required
@require_POST
def send_plan_version(request: HttpRequest, pk: int) -> HttpResponse:
    version = get_visible_or_404(PlanVersion, request.user, patient_path="plan__patient", pk=pk)
    return _send(request, plan_version_id=version.pk)
