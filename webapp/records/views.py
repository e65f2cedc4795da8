"""Record pages: patients, CT studies, X-rays, C-arms, uploads and audited downloads.

Every object that belongs to a patient is fetched through :mod:`webapp.records.access`
(``visible_patients``, ``scope``, ``get_visible_or_404``), so another team's patient answers
404 everywhere. Every page view of patient data, download, export and upload is recorded
with :func:`webapp.core.audit.record`.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import shutil
import tempfile
import time
from pathlib import Path

from django.apps import apps
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Count, Q
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from webapp.core.audit import record
from webapp.core.models import AuditEvent
from webapp.core.roles import CALIBRATION_ADMIN, SURGEON, has_role
from webapp.records.access import get_visible_or_404, scope, visible_patients
from webapp.records.forms import (
    CArmForm,
    CTUploadForm,
    PatientForm,
    SeriesChoiceForm,
    XrayUploadForm,
)
from webapp.records.models import CArm, CTStudy, Patient, XrayImage
from webapp.xray_view import XrayUnavailable, display_png, view_png

log = logging.getLogger(__name__)

A = AuditEvent.Action
STAGING_SESSION_KEY = "records_ct_staging"
STAGING_MAX_AGE_S = 2 * 3600
PREVIEW_MAX_SIDE = 1024


def can_edit_records(user) -> bool:
    """Surgeons (and site admins) create patients and upload images."""
    return has_role(user, SURGEON)


def can_manage_carms(user) -> bool:
    """Calibration admins (and site admins) create and change C-arms."""
    return has_role(user, CALIBRATION_ADMIN)


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


def _staging_root() -> Path:
    root = Path(
        getattr(settings, "ORTHOFUSE_STAGING_DIR", "")
        or Path(tempfile.gettempdir()) / "orthofuse-staging"
    )
    root.mkdir(parents=True, exist_ok=True)
    return root


def _purge_stale_staging(root: Path) -> None:
    cutoff = time.time() - STAGING_MAX_AGE_S
    for child in root.iterdir():
        try:
            if child.is_dir() and child.stat().st_mtime < cutoff:
                shutil.rmtree(child, ignore_errors=True)
        except OSError:
            continue


_SAFE_SUFFIXES = (".nii.gz", ".nii", ".zip", ".dcm", ".png")


def safe_suffix(name: str | None) -> str:
    """The recognised suffix of a client file name, or '' (the rest of the name is ignored)."""
    lowered = (name or "").lower()
    return next((ext for ext in _SAFE_SUFFIXES if lowered.endswith(ext)), "")


def _write_uploads(files, folder: Path) -> list[Path]:
    """Write uploads under generated names (``upload-00001.dcm``); returns the paths."""
    paths = []
    for index, upload in enumerate(files, start=1):
        path = folder / f"upload-{index:05d}{safe_suffix(upload.name)}"
        with path.open("wb") as handle:
            for chunk in upload.chunks():
                handle.write(chunk)
        paths.append(path)
    return paths


_GENERATED_NAME = re.compile(r"upload-(\d{5})(?:\.nii\.gz|\.nii|\.zip|\.dcm|\.png)?")


def display_name(name: str | None) -> str:
    """A client file name for messages only: last path part, printable, at most 80 chars."""
    base = re.split(r"[\\/]", name or "")[-1]
    base = "".join(ch for ch in base if ch.isprintable()).strip()
    return base[:80] or "unnamed file"


def with_client_names(message: str, names: list[str]) -> str:
    """Replace generated names (``upload-00003.dcm``) in a message by the user's names."""

    def swap(match: re.Match) -> str:
        index = int(match.group(1)) - 1
        return f"'{names[index]}'" if 0 <= index < len(names) else match.group(0)

    return _GENERATED_NAME.sub(swap, message)


def _import_ct(paths, patient, user, *, series_uid=None, deidentify=False, description=""):
    from webapp.records.ct_import import import_ct_study

    # One file (a .zip, a NIfTI or a single DICOM) goes in as a path, several as a list.
    sources = paths[0] if len(paths) == 1 else list(paths)
    return import_ct_study(
        sources,
        patient,
        user=user,
        series_uid=series_uid,
        deidentify=deidentify,
        description=description,
    )


def _series_rows(series) -> list[dict]:
    """The importer's series list as plain JSON-able rows with a ``uid`` key."""
    rows = []
    for item in series or []:
        item = dict(item)
        item["uid"] = str(item.get("uid") or item.get("series_uid") or "")
        rows.append(json.loads(json.dumps(item, default=str)))
    return [row for row in rows if row["uid"]]


def _refusal_message(exc: Exception) -> str:
    message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return str(message).splitlines()[0][:500]


def _run_ct_import(request, patient, paths, *, series_uid, deidentify, description):
    """Run the importer. Returns ('ok', study) | ('multiple', series) | ('refused', message)."""
    from webapp.records.ct_import import ImportRefused, MultipleSeries

    try:
        study = _import_ct(
            paths,
            patient,
            request.user,
            series_uid=series_uid,
            deidentify=deidentify,
            description=description,
        )
    except MultipleSeries as exc:
        rows = _series_rows(getattr(exc, "series", []))
        if rows:
            return "multiple", rows
        return "refused", _refusal_message(exc)
    except ImportRefused as exc:
        return "refused", _refusal_message(exc)
    except (ValueError, OSError, MemoryError) as exc:
        log.warning("CT import refused: %s", exc)
        return "refused", _refusal_message(exc)
    record(
        request,
        A.CREATE,
        patient=patient,
        obj=study,
        detail=f"CT web upload{' (de-identified)' if deidentify else ''}: {len(paths)} file(s)",
    )
    return "ok", study


@login_required
@require_POST
def ct_upload(request: HttpRequest, pk: int) -> HttpResponse:
    patient = get_visible_or_404(Patient, request.user, pk=pk)
    if not can_edit_records(request.user):
        raise PermissionDenied("Only surgeons and site admins upload images.")
    form = CTUploadForm(request.POST, request.FILES)
    if not form.is_valid():
        return _patient_page_with(request, patient, ct_form=form)

    root = _staging_root()
    _purge_stale_staging(root)
    token = secrets.token_urlsafe(24)
    folder = root / token
    folder.mkdir(mode=0o700)
    keep = False
    try:
        paths = _write_uploads(form.cleaned_data["files"], folder)
        names = [display_name(upload.name) for upload in form.cleaned_data["files"]]
        outcome, value = _run_ct_import(
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


def _staged(request, token: str) -> tuple[dict, Path]:
    staging = request.session.get(STAGING_SESSION_KEY, {})
    entry = staging.get(token)
    if entry is None or not token.replace("-", "").replace("_", "").isalnum():
        raise Http404("upload not found")
    folder = _staging_root() / token
    if not folder.is_dir():
        staging.pop(token, None)
        request.session[STAGING_SESSION_KEY] = staging
        raise Http404("upload expired")
    return entry, folder


def _forget_staged(request, token: str) -> None:
    staging = request.session.get(STAGING_SESSION_KEY, {})
    staging.pop(token, None)
    request.session[STAGING_SESSION_KEY] = staging
    shutil.rmtree(_staging_root() / token, ignore_errors=True)


@login_required
@require_http_methods(["GET", "POST"])
def ct_choose_series(request: HttpRequest, pk: int, token: str) -> HttpResponse:
    patient = get_visible_or_404(Patient, request.user, pk=pk)
    if not can_edit_records(request.user):
        raise PermissionDenied("Only surgeons and site admins upload images.")
    entry, folder = _staged(request, token)
    if entry["patient"] != patient.pk:
        raise Http404("upload not found")
    if request.method == "POST" and "cancel" in request.POST:
        _forget_staged(request, token)
        messages.info(request, "Upload cancelled; the uploaded files were deleted.")
        return redirect("records:patient-detail", pk=patient.pk)
    form = SeriesChoiceForm(request.POST or None, series=entry["series"])
    error = ""
    if request.method == "POST" and form.is_valid():
        paths = [folder / name for name in entry["files"]]
        outcome, value = _run_ct_import(
            request,
            patient,
            paths,
            series_uid=form.cleaned_data["series_uid"],
            deidentify=entry["deidentify"],
            description=entry["description"],
        )
        if outcome == "ok":
            _forget_staged(request, token)
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
        path = _write_uploads([upload], Path(tmp))[0]
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
                "file", with_client_names(_refusal_message(exc), [display_name(upload.name)])
            )
            return _patient_page_with(request, patient, xray_form=form)
    record(request, A.CREATE, patient=patient, obj=xray, detail="X-ray web upload")
    messages.success(request, f"X-ray imported: {xray}.")
    return redirect("records:xray-detail", pk=xray.pk)


# --------------------------------------------------------------------------- studies


@login_required
def study_detail(request: HttpRequest, pk: int) -> HttpResponse:
    study = get_visible_or_404(CTStudy.objects.select_related("patient"), request.user, pk=pk)
    record(request, A.VIEW, patient=study.patient, obj=study, detail="CT study detail")
    affine_rows = study.affine if isinstance(study.affine, list) and len(study.affine) == 4 else []
    return render(
        request,
        "records/study_detail.html",
        {
            "study": study,
            "patient": study.patient,
            "affine_rows": affine_rows,
            "provenance_rows": provenance_rows(study.provenance),
        },
    )


def provenance_rows(provenance) -> list[tuple[str, str]]:
    """Provenance as readable (key, text) rows: lists joined, mappings as ``k=v`` pairs."""
    if not isinstance(provenance, dict):
        return []
    rows = []
    for key, value in provenance.items():
        if isinstance(value, dict):
            text = ", ".join(f"{k}={v}" for k, v in value.items())
        elif isinstance(value, (list, tuple)):
            text = ", ".join(str(item) for item in value)
        elif isinstance(value, bool):
            text = "yes" if value else "no"
        else:
            text = str(value)
        rows.append((str(key).replace("_", " "), text or "—"))
    return rows


@login_required
def study_download(request: HttpRequest, pk: int) -> FileResponse:
    """The stored volume (int16 HU .npy, shape (slices, rows, cols)); audited as an export."""
    study = get_visible_or_404(CTStudy.objects.select_related("patient"), request.user, pk=pk)
    if not study.volume_file:
        raise Http404("no volume stored")
    try:
        handle = study.volume_file.open("rb")
    except (OSError, FileNotFoundError) as exc:
        raise Http404("volume file missing") from exc
    record(request, A.EXPORT, patient=study.patient, obj=study, detail="CT volume download (.npy)")
    return FileResponse(
        handle,
        as_attachment=True,
        filename=f"ct-study-{study.pk}.npy",
        content_type="application/octet-stream",
    )


# --------------------------------------------------------------------------- X-rays


@login_required
def xray_detail(request: HttpRequest, pk: int) -> HttpResponse:
    xray = get_visible_or_404(
        XrayImage.objects.select_related("patient", "carm"), request.user, pk=pk
    )
    record(request, A.VIEW, patient=xray.patient, obj=xray, detail="X-ray detail")
    can_dewarp = can_edit_records(request.user) or can_manage_carms(request.user)
    return render(
        request,
        "records/xray_detail.html",
        {"xray": xray, "patient": xray.patient, "can_dewarp": can_dewarp},
    )


def _xray_file(xray: XrayImage, which: str):
    if which == "dewarped":
        if not xray.dewarped_file:
            raise Http404("no dewarped image")
        return xray.dewarped_file
    if which != "original":
        raise Http404("unknown image")
    return xray.original_file


def render_preview_png(pixels, photometric: str, max_side: int = PREVIEW_MAX_SIDE) -> bytes:
    """A 2-D image as an 8-bit PNG of at most ``max_side`` pixels, by the one display rule
    of :func:`webapp.xray_view.display_png` (window inside the field, MONOCHROME1 inverted)."""
    return display_png(pixels, photometric, max_side=max_side)


@login_required
def xray_preview(request: HttpRequest, pk: int) -> HttpResponse:
    """A windowed 8-bit PNG of the stored X-ray (``?which=original|dewarped``)."""
    xray = get_visible_or_404(XrayImage.objects.select_related("patient"), request.user, pk=pk)
    which = request.GET.get("which", "original")
    if which not in ("original", "dewarped"):
        raise Http404("unknown image")
    if which == "dewarped" and not xray.dewarped_file:
        raise Http404("no dewarped image")
    try:
        # "original" is the stored file as a viewer at the source sees it (device flags
        # applied), before dewarping.
        stage = "reoriented" if which == "original" else "dewarped"
        png = view_png(xray, stage=stage, max_side=PREVIEW_MAX_SIDE)
    except XrayUnavailable as exc:
        log.warning("X-ray %s preview failed: %s", xray.pk, exc)
        return HttpResponse(
            f"Preview unavailable: {exc.message}", status=422, content_type="text/plain"
        )
    record(request, A.VIEW, patient=xray.patient, obj=xray, detail=f"X-ray preview ({which})")
    response = HttpResponse(png, content_type="image/png")
    response["Cache-Control"] = "private, no-store"
    return response


@login_required
def xray_download(request: HttpRequest, pk: int) -> FileResponse:
    """The stored X-ray file (``?which=original|dewarped``), audited as a download."""
    xray = get_visible_or_404(XrayImage.objects.select_related("patient"), request.user, pk=pk)
    which = request.GET.get("which", "original")
    field = _xray_file(xray, which)
    try:
        handle = field.open("rb")
    except (OSError, FileNotFoundError) as exc:
        raise Http404("file missing") from exc
    suffix = ".png" if (which == "dewarped" or xray.file_format == XrayImage.Format.PNG) else ".dcm"
    record(
        request, A.DOWNLOAD, patient=xray.patient, obj=xray, detail=f"X-ray file download ({which})"
    )
    return FileResponse(handle, as_attachment=True, filename=f"xray-{xray.pk}-{which}{suffix}")


# --------------------------------------------------------------------------- C-arms


@login_required
def carm_list(request: HttpRequest) -> HttpResponse:
    carms = CArm.objects.annotate(n_xrays=Count("xrays"))
    return render(
        request,
        "records/carm_list.html",
        {"carms": carms, "can_manage": can_manage_carms(request.user)},
    )


@login_required
def carm_detail(request: HttpRequest, pk: int) -> HttpResponse:
    carm = get_object_or_404(CArm, pk=pk)
    return render(
        request,
        "records/carm_detail.html",
        {
            "carm": carm,
            "can_manage": can_manage_carms(request.user),
            "profiles": _calibration_profiles(carm),
        },
    )


def _calibration_profiles(carm: CArm) -> list:
    """The C-arm's calibration profiles when the calibration app provides them."""
    manager = getattr(carm, "profiles", None)
    if manager is None:
        return []
    return list(manager.all()[:20])


@login_required
@require_http_methods(["GET", "POST"])
def carm_edit(request: HttpRequest, pk: int | None = None) -> HttpResponse:
    if not can_manage_carms(request.user):
        raise PermissionDenied("Only calibration admins and site admins change C-arms.")
    carm = get_object_or_404(CArm, pk=pk) if pk is not None else None
    form = CArmForm(request.POST or None, instance=carm)
    if request.method == "POST" and form.is_valid():
        saved = form.save()
        record(
            request, A.CREATE if carm is None else A.UPDATE, obj=saved, detail=f"C-arm {saved.name}"
        )
        messages.success(request, f"C-arm {saved.name} saved.")
        return redirect(reverse("records:carm-detail", kwargs={"pk": saved.pk}))
    status = 400 if request.method == "POST" else 200
    return render(request, "records/carm_form.html", {"form": form, "carm": carm}, status=status)
