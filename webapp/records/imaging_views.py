"""Record pages of CT studies and X-rays: detail pages, the X-ray preview (through
:mod:`webapp.xray_view`) and audited downloads."""

from __future__ import annotations

import logging

from django.contrib.auth.decorators import login_required
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from webapp.core.audit import record
from webapp.core.models import AuditEvent
from webapp.records.access import (
    can_edit_records,
    can_manage_carms,
    get_visible_or_404,
)
from webapp.records.models import CTStudy, XrayImage
from webapp.xray_view import XrayUnavailable, view_png

log = logging.getLogger(__name__)

A = AuditEvent.Action
PREVIEW_MAX_SIDE = 1024


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


