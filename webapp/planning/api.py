"""Planning REST API (DRF). Every endpoint is scoped to the user's care teams (404 for
others); changes need the Surgeon role, tool poses any authenticated user who can see
the plan (a navigation system's account)."""

from __future__ import annotations

import json

from django.db.models import Max
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.exceptions import ParseError, PermissionDenied
from rest_framework.parsers import BaseParser
from rest_framework.response import Response
from rest_framework.views import APIView

from refusal import Refused
from webapp.core.audit import record
from webapp.core.models import AuditEvent
from webapp.core.roles import REVIEWER, SURGEON, has_role
from webapp.planning import services
from webapp.planning.models import Plan
from webapp.records.access import get_visible_or_404, scope
from webapp.records.models import Patient, XrayImage

A = AuditEvent.Action
_GET = extend_schema(responses={200: OpenApiTypes.OBJECT}, tags=["planning"])


def _get(operation_id: str):
    """A GET schema with an explicit operation id (list and detail share a path prefix)."""
    return extend_schema(responses={200: OpenApiTypes.OBJECT}, tags=["planning"], operation_id=operation_id)

_POST = extend_schema(
    request=OpenApiTypes.OBJECT,
    responses={201: OpenApiTypes.OBJECT, 400: OpenApiTypes.OBJECT},
    tags=["planning"],
)


class LenientJSONParser(BaseParser):
    """JSON that may carry NaN/Infinity literals, so that the pose validation can name
    the matrix that holds them instead of a generic parse error."""

    media_type = "application/json"

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return json.loads(stream.read().decode("utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise ParseError(f"the request body is not valid JSON: {exc}") from None


def _plan(request, pk: int) -> Plan:
    return get_visible_or_404(
        Plan.objects.select_related("patient", "xray1", "xray2"), request.user, pk=pk
    )


def _require(request, *roles: str) -> None:
    if not any(has_role(request.user, r) for r in roles):
        raise PermissionDenied(f"this needs the {' or '.join(roles)} role")


def _bad(exc: Exception) -> Response:
    return Response({"detail": str(exc)}, status=status.HTTP_400_BAD_REQUEST)


def plan_json(plan: Plan) -> dict:
    latest = plan.latest_version
    return {
        "id": plan.pk,
        "name": plan.name,
        "patient": plan.patient_id,
        "patient_mrn": plan.patient.mrn,
        "xray1": plan.xray1_id,
        "xray2": plan.xray2_id,
        "created_by": getattr(plan.created_by, "username", ""),
        "created_at": plan.created_at.isoformat(),
        "latest_version": latest.number if latest else None,
    }


class PlanListAPI(APIView):
    """GET: plans the user may see (``?patient=<id>``). POST ``{patient, name, xray1,
    xray2}``: create a plan (Surgeon)."""

    @_get("plans_list")
    def get(self, request):
        plans = scope(Plan.objects.select_related("patient", "created_by"), request.user)
        if request.query_params.get("patient"):
            plans = plans.filter(patient_id=request.query_params["patient"])
        plans = plans.annotate(n=Max("versions__number"))
        record(request, A.VIEW, detail="plan list (API)")
        return Response({"results": [plan_json(p) for p in plans]})

    @_POST
    def post(self, request):
        _require(request, SURGEON)
        data = request.data if isinstance(request.data, dict) else {}
        try:
            patient = get_visible_or_404(Patient, request.user, pk=int(data.get("patient")))
            x1 = XrayImage.objects.get(pk=int(data.get("xray1")), patient=patient)
            x2 = XrayImage.objects.get(pk=int(data.get("xray2")), patient=patient)
        except (TypeError, ValueError, XrayImage.DoesNotExist):
            return _bad(
                ValueError(
                    "patient, xray1 and xray2 must be ids of a patient and two of its X-rays"
                )
            )
        try:
            plan = services.create_plan(patient, request.user, data.get("name", ""), x1, x2)
        except Refused as exc:
            return _bad(exc)
        record(request, A.CREATE, patient=patient, obj=plan, detail=f"plan {plan.name} (API)")
        return Response(plan_json(plan), status=status.HTTP_201_CREATED)


class PlanDetailAPI(APIView):
    """GET: the plan, its view geometry (with warnings) and its latest version."""

    @_GET
    def get(self, request, pk: int):
        plan = _plan(request, pk)
        try:
            geometry = services.plan_geometry(plan.xray1, plan.xray2).to_json()
        except Refused as exc:
            geometry = {"error": str(exc)}
        record(request, A.VIEW, patient=plan.patient, obj=plan, detail="plan (API)")
        latest = plan.latest_version
        return Response(
            {
                **plan_json(plan),
                "geometry": geometry,
                "version": services.version_json(latest) if latest else None,
            }
        )


class PlanVersionsAPI(APIView):
    """GET: version history. POST ``{"trajectories": [...], "note": str}``: save a new
    version (Surgeon); the server recomputes all 3D data from the picks."""

    @_get("plans_versions_list")
    def get(self, request, pk: int):
        plan = _plan(request, pk)
        record(request, A.VIEW, patient=plan.patient, obj=plan, detail="plan versions (API)")
        rows = [
            {k: v for k, v in services.version_json(ver).items() if k != "snapshot"}
            for ver in plan.versions.select_related("author").order_by("-number")
        ]
        return Response({"results": rows})

    @_POST
    def post(self, request, pk: int):
        plan = _plan(request, pk)
        _require(request, SURGEON)
        data = request.data if isinstance(request.data, dict) else {}
        try:
            version = services.save_version(
                plan,
                request.user,
                data.get("trajectories"),
                data.get("note", ""),
                based_on=data.get("based_on"),
            )
        except services.PlanConflict as exc:
            return Response(
                {
                    "detail": exc.message,
                    "based_on": exc.based_on,
                    "changes": exc.changes,
                    "latest": services.version_json(exc.latest),
                },
                status=status.HTTP_409_CONFLICT,
            )
        except Refused as exc:
            return _bad(exc)
        record(
            request,
            A.UPDATE,
            patient=plan.patient,
            obj=plan,
            detail=f"plan v{version.number}: {version.summary}",
        )
        return Response(services.version_json(version), status=status.HTTP_201_CREATED)


class PlanVersionDetailAPI(APIView):
    @_GET
    def get(self, request, pk: int, number: int):
        plan = _plan(request, pk)
        version = plan.versions.filter(number=number).first()
        if version is None:
            return Response({"detail": f"plan {pk} has no version {number}"}, status=404)
        record(request, A.VIEW, patient=plan.patient, obj=plan, detail=f"plan v{number} (API)")
        return Response(services.version_json(version))


class ToolPoseAPI(APIView):
    """POST a tracked tool pose; GET the latest one projected on both views.

    Body: ``{"frame": "ct", "tip": [x,y,z], "axis": [dx,dy,dz]}`` or
    ``{"frame": "ct", "T_ct_from_tool": 4x4}`` or ``{"frame": "tracker",
    "T_tracker_from_tool": 4x4, "T_tracker_from_patientref": 4x4,
    "T_patientref_from_ct": 4x4}`` or ``{"frame": "tracker", "T_tracker_from_tool",
    "T_tracker_from_carmref", "T_carmref_from_world"}``; optional ``tip_in_tool``,
    ``axis_in_tool`` (default origin and +z) and ``extension_mm`` (default 100).
    Every matrix must be 4x4, finite and rigid (orthonormal rotation, det +1); a bad
    one is refused with 400 and a message naming it.
    """

    parser_classes = [LenientJSONParser]

    @_GET
    def get(self, request, pk: int):
        plan = _plan(request, pk)
        sample = plan.tool_poses.order_by("-received_at", "-id").first()
        try:
            return Response(services.tool_state(plan, sample))
        except Refused as exc:
            return _bad(exc)

    @_POST
    def post(self, request, pk: int):
        plan = _plan(request, pk)
        try:
            sample = services.receive_tool_pose(plan, request.user, request.data)
            state = services.tool_state(plan, sample)
        except Refused as exc:
            return _bad(exc)
        return Response(state, status=status.HTTP_201_CREATED)


class OutcomesAPI(APIView):
    """GET: post-op outcomes of the plan. POST: record an achieved trajectory (see
    ``services.record_outcome``); Surgeon or Reviewer."""

    @_GET
    def get(self, request, pk: int):
        plan = _plan(request, pk)
        record(request, A.VIEW, patient=plan.patient, obj=plan, detail="post-op outcomes (API)")
        return Response(
            {"results": [services.outcome_json(o) for o in plan.outcomes.select_related("version")]}
        )

    @_POST
    def post(self, request, pk: int):
        plan = _plan(request, pk)
        _require(request, SURGEON, REVIEWER)
        try:
            outcome = services.record_outcome(plan, request.user, request.data)
        except Refused as exc:
            return _bad(exc)
        record(
            request,
            A.CREATE,
            patient=plan.patient,
            obj=outcome,
            detail=f"post-op outcome {outcome.trajectory_name}",
        )
        return Response(services.outcome_json(outcome), status=status.HTTP_201_CREATED)
