"""Planning pages: plan list per patient, the two-view planning page, images, exports,
the 3D scene and the post-op outcomes review. Every view is access-checked (another care
team gets 404) and audited."""

from __future__ import annotations

import json
import logging
from functools import lru_cache

import numpy as np
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.middleware.csrf import get_token
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods

from planning.engine import report, scene
from planning.engine.errors import PlanningRefused
from planning.engine.views_geometry import ViewGeometry
from refusal import Refused
from webapp.core.audit import record
from webapp.core.models import AuditEvent
from webapp.core.roles import REVIEWER, SURGEON, has_role
from webapp.planning import services
from webapp.planning.models import Plan, PlanVersion
from webapp.records.access import get_visible_or_404, scope
from webapp.records.models import Patient, XrayImage

log = logging.getLogger(__name__)
A = AuditEvent.Action


def _plan(request: HttpRequest, pk: int) -> Plan:
    return get_visible_or_404(
        Plan.objects.select_related("patient", "xray1", "xray2", "xray1__carm", "xray2__carm"),
        request.user,
        pk=pk,
    )


def _version(request: HttpRequest, plan: Plan) -> PlanVersion:
    number = request.GET.get("version")
    versions = plan.versions.select_related("author")
    if number:
        try:
            version = versions.filter(number=int(number)).first()
        except ValueError:
            version = None
        if version is None:
            raise Http404("no such version")
        return version
    version = versions.order_by("-number").first()
    if version is None:
        raise Http404("plan has no version")
    return version


def can_edit(user) -> bool:
    return has_role(user, SURGEON)


@login_required
@require_GET
def plan_index(request: HttpRequest) -> HttpResponse:
    """Recent plans of the patients the user may see."""
    plans = scope(Plan.objects.select_related("patient", "created_by"), request.user).order_by(
        "-updated_at"
    )[:200]
    record(request, A.VIEW, detail="plan index")
    return render(request, "planning/index.html", {"plans": plans})


@login_required
@require_http_methods(["GET", "POST"])
def patient_plans(request: HttpRequest, patient_id: int) -> HttpResponse:
    patient = get_visible_or_404(Patient, request.user, pk=patient_id)
    xrays = list(patient.xrays.select_related("carm").order_by("created_at"))
    error = ""
    if request.method == "POST":
        if not can_edit(request.user):
            return HttpResponse(
                "Only surgeons can create plans.", status=403, content_type="text/plain"
            )
        try:
            ids = [int(request.POST.get("xray1", "")), int(request.POST.get("xray2", ""))]
            by_id = {x.pk: x for x in xrays}
            if ids[0] not in by_id or ids[1] not in by_id:
                raise PlanningRefused("choose two X-rays of this patient")
            plan = services.create_plan(
                patient, request.user, request.POST.get("name", ""), by_id[ids[0]], by_id[ids[1]]
            )
        except Refused as exc:
            error = (
                str(exc)
                if "invalid literal" not in str(exc)
                else "choose two X-rays of this patient"
            )
        else:
            record(request, A.CREATE, patient=patient, obj=plan, detail=f"plan {plan.name}")
            messages.success(request, f"Plan {plan.name} created.")
            return redirect("planning:plan", pk=plan.pk)
    plans = patient.plans.select_related("created_by").order_by("-updated_at")
    record(request, A.VIEW, patient=patient, detail="plan list")
    return render(
        request,
        "planning/patient_plans.html",
        {
            "patient": patient,
            "plans": plans,
            "xrays": xrays,
            "error": error,
            "can_edit": can_edit(request.user),
        },
        status=400 if error else 200,
    )


@login_required
@require_GET
def plan_page(request: HttpRequest, pk: int) -> HttpResponse:
    plan = _plan(request, pk)
    version = _version(request, plan)
    geometry_error = ""
    try:
        geometry = services.plan_geometry(plan.xray1, plan.xray2).to_json()
    except Refused as exc:
        geometry, geometry_error = None, str(exc)
    latest = plan.latest_version
    editable = can_edit(request.user) and version.number == latest.number
    ct_study = None
    if geometry and geometry["world_frame"] == "ct":
        ct_study = plan.patient.ct_studies.filter(pk=geometry["study_id"]).first()
    context = {
        "plan": {"id": plan.pk, "name": plan.name, "patient": plan.patient.mrn},
        "geometry": geometry,
        "version": services.version_json(version),
        "can_edit": editable,
        "images": [reverse("planning:view-image", args=[plan.pk, i]) for i in (1, 2)],
        "api": {
            "versions": reverse("planning-api:plan-versions", args=[plan.pk]),
            "tool_pose": reverse("planning-api:plan-tool-pose", args=[plan.pk]),
            "scene": reverse("planning:scene", args=[plan.pk]),
            "outcomes": reverse("planning-api:plan-outcomes", args=[plan.pk]),
        },
        "poll_ms": 500,
        "csrf": get_token(request),
    }
    record(request, A.VIEW, patient=plan.patient, obj=plan, detail=f"plan v{version.number}")
    return render(
        request,
        "planning/plan.html",
        {
            "plan": plan,
            "version": version,
            "latest": latest,
            "versions": plan.versions.select_related("author").order_by("-number"),
            "outcomes": plan.outcomes.select_related("version").all(),
            "geometry": geometry,
            "geometry_error": geometry_error,
            "context": context,
            "editable": editable,
            "xrays": plan.patient.xrays.all(),
            "ct_study": ct_study,
        },
    )


@login_required
@require_GET
def view_image(request: HttpRequest, pk: int, index: int) -> HttpResponse:
    plan = _plan(request, pk)
    if index not in (1, 2):
        raise Http404("no such view")
    xray = plan.xray1 if index == 1 else plan.xray2
    try:
        png = services.xray_png(xray)
    except Refused as exc:
        return HttpResponse(f"Image unavailable: {exc}", status=422, content_type="text/plain")
    record(request, A.VIEW, patient=plan.patient, obj=xray, detail=f"plan {plan.pk} view {index}")
    response = HttpResponse(png, content_type="image/png")
    response["Cache-Control"] = "private, max-age=300"
    return response


def export_payload(plan: Plan, version: PlanVersion) -> dict:
    return {
        "plan": {
            "id": plan.pk,
            "name": plan.name,
            "patient_mrn": plan.patient.mrn,
            "xray_ids": [plan.xray1_id, plan.xray2_id],
            "created_by": getattr(plan.created_by, "username", ""),
            "created_at": plan.created_at.isoformat(),
        },
        "version": services.version_json(version),
        "outcomes": [services.outcome_json(o) for o in plan.outcomes.filter(version=version)],
        "units": {
            "length": "mm",
            "angle": "deg",
            "pixels": "(u, v) column, row; top-left pixel centre (0, 0)",
        },
    }


@login_required
@require_GET
def export_json(request: HttpRequest, pk: int) -> HttpResponse:
    plan = _plan(request, pk)
    version = _version(request, plan)
    body = json.dumps(export_payload(plan, version), indent=2)
    record(request, A.EXPORT, patient=plan.patient, obj=plan, detail=f"plan v{version.number} JSON")
    response = HttpResponse(body, content_type="application/json")
    response["Content-Disposition"] = (
        f'attachment; filename="plan-{plan.pk}-v{version.number}.json"'
    )
    return response


def _report_png(plan: Plan, version: PlanVersion) -> bytes:
    images = []
    for xray in (plan.xray1, plan.xray2):
        try:
            images.append(services.display_pixels(xray))
        except Refused:
            images.append(np.full((xray.rows, xray.cols), 40, np.uint8))
    header = {
        "plan": plan.name,
        "patient": plan.patient.mrn,
        "version": version.number,
        "author": getattr(version.author, "username", ""),
        "created_at": version.created_at.strftime("%Y-%m-%d %H:%M UTC"),
    }
    return report.render_report_png(version.snapshot, images, header)


@login_required
@require_GET
def report_file(request: HttpRequest, pk: int, fmt: str) -> HttpResponse:
    plan = _plan(request, pk)
    version = _version(request, plan)
    png = _report_png(plan, version)
    record(
        request,
        A.EXPORT,
        patient=plan.patient,
        obj=plan,
        detail=f"plan v{version.number} report {fmt}",
    )
    if fmt == "pdf":
        body, ctype = report.png_to_pdf(png), "application/pdf"
    else:
        body, ctype = png, "image/png"
    response = HttpResponse(body, content_type=ctype)
    response["Content-Disposition"] = (
        f'attachment; filename="plan-{plan.pk}-v{version.number}.{fmt}"'
    )
    return response


@lru_cache(maxsize=4)
def _bone_trace(study_pk: int, volume_name: str) -> dict | None:
    from webapp.records.models import CTStudy
    from webapp.records.volume_store import load_study_volume

    study = CTStudy.objects.get(pk=study_pk)
    volume = load_study_volume(study)
    return scene.bone_mesh(volume.array, volume.affine)


@login_required
@require_GET
def scene_json(request: HttpRequest, pk: int) -> JsonResponse:
    plan = _plan(request, pk)
    version = _version(request, plan)
    views = [ViewGeometry.from_json(v) for v in version.snapshot.get("views", [])]
    traces = scene.plan_traces(views)
    study_id = version.snapshot.get("study_id")
    if version.snapshot.get("world_frame") == "ct" and study_id:
        study = plan.patient.ct_studies.filter(pk=study_id).first()
        if study is not None and study.volume_file:
            try:
                bone = _bone_trace(study.pk, study.volume_file.name)
            except Exception as exc:  # noqa: BLE001 - the 3D view works without the bone
                log.warning("bone mesh of study %s failed: %s", study_id, exc)
                bone = None
            if bone:
                traces.insert(0, bone)
    record(request, A.VIEW, patient=plan.patient, obj=plan, detail="plan 3D scene")
    return JsonResponse({"traces": traces, "world_frame": version.snapshot.get("world_frame")})


@login_required
@require_GET
def outcomes_page(request: HttpRequest) -> HttpResponse:
    """Post-op deviations (planned vs achieved) across the patients the user may see."""
    rows, summary = services.outcomes_overview(request.user)
    record(request, A.VIEW, detail=f"post-op outcomes ({len(rows)})")
    return render(
        request,
        "planning/outcomes.html",
        {"rows": rows, "summary": summary, "is_reviewer": has_role(request.user, REVIEWER)},
    )


@login_required
@require_GET
def postop_page(request: HttpRequest, pk: int) -> HttpResponse:
    """Pick the achieved trajectory on two post-op X-rays (same two-view picker)."""
    plan = _plan(request, pk)
    version = _version(request, plan)
    try:
        x1 = get_visible_or_404(
            XrayImage, request.user, pk=int(request.GET.get("xray1", "0")), patient=plan.patient
        )
        x2 = get_visible_or_404(
            XrayImage, request.user, pk=int(request.GET.get("xray2", "0")), patient=plan.patient
        )
    except ValueError:
        raise Http404("choose two post-op X-rays") from None
    try:
        geometry = services.plan_geometry(x1, x2).to_json()
    except Refused as exc:
        messages.error(request, str(exc))
        return redirect("planning:plan", pk=plan.pk)
    planned = [t for t in version.snapshot.get("trajectories", []) if t.get("complete")]
    context = {
        "plan": {"id": plan.pk, "name": plan.name, "patient": plan.patient.mrn},
        "mode": "postop",
        "geometry": geometry,
        "version": {
            "number": version.number,
            "snapshot": {
                "trajectories": [
                    {
                        "name": t["name"],
                        "colour": t["colour"],
                        "diameter_mm": t["diameter_mm"],
                        "length_mm": t["length_mm"],
                        "picks": {},
                    }
                    for t in planned
                ]
            },
        },
        "postop": {"xray1": x1.pk, "xray2": x2.pk, "version": version.number},
        "can_edit": can_edit(request.user),
        "images": [
            reverse("planning:xray-image", args=[plan.pk, x1.pk]),
            reverse("planning:xray-image", args=[plan.pk, x2.pk]),
        ],
        "api": {
            "outcomes": reverse("planning-api:plan-outcomes", args=[plan.pk]),
            "tool_pose": None,
            "scene": None,
        },
        "csrf": get_token(request),
    }
    record(request, A.VIEW, patient=plan.patient, obj=plan, detail="post-op picking")
    return render(
        request,
        "planning/postop.html",
        {"plan": plan, "version": version, "context": context, "geometry": geometry},
    )


@login_required
@require_GET
def xray_image(request: HttpRequest, pk: int, xray_id: int) -> HttpResponse:
    plan = _plan(request, pk)
    xray = get_visible_or_404(XrayImage, request.user, pk=xray_id, patient=plan.patient)
    try:
        png = services.xray_png(xray)
    except Refused as exc:
        return HttpResponse(f"Image unavailable: {exc}", status=422, content_type="text/plain")
    record(request, A.VIEW, patient=plan.patient, obj=xray, detail=f"plan {plan.pk} post-op view")
    response = HttpResponse(png, content_type="image/png")
    response["Cache-Control"] = "private, max-age=300"
    return response
