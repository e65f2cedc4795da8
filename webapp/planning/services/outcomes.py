"""Post-operative outcomes: deviations of the placed implant from the plan, and the
overview over the patients a user may see."""

from __future__ import annotations

from typing import Any

import numpy as np
from django.db import transaction

from planning.engine import trajectory as traj
from planning.engine.errors import PlanningRefused
from webapp.planning.models import Plan, PostOpOutcome
from webapp.planning.services.geometry import plan_geometry
from webapp.planning.services.versions import bounded_number, clean_trajectories
from webapp.records.access import scope
from webapp.records.models import XrayImage


# --------------------------------------------------------------------------- post-op
def _vector(value: Any, name: str) -> np.ndarray:
    if not isinstance(value, (list, tuple)) or len(value) != 3:
        raise PlanningRefused(f"{name} must be [x, y, z] in mm")
    return np.array([bounded_number(x, name, -1e5, 1e5) for x in value])


@transaction.atomic
def record_outcome(plan: Plan, user, payload: Any) -> PostOpOutcome:
    """Store the achieved trajectory of one planned trajectory and its deviations.

    ``payload``: ``{"trajectory": name, "version": n (default latest), and either
    "xray1"/"xray2" ids + "picks" (entry/target in both post-op views) or
    "entry"/"target" world mm with "source": "registration" | "entered"}``."""
    if not isinstance(payload, dict):
        raise PlanningRefused("the outcome must be a JSON object")
    versions = plan.versions.all()
    if payload.get("version") is not None:
        version = versions.filter(number=payload.get("version")).first()
        if version is None:
            raise PlanningRefused(f"plan has no version {payload.get('version')!r}")
    else:
        version = versions.order_by("-number").first()
    planned = {t["name"]: t for t in version.snapshot.get("trajectories", [])}
    name = str(payload.get("trajectory", ""))
    if name not in planned:
        raise PlanningRefused(f"version {version.number} has no trajectory named {name!r}")
    plan_t = planned[name]
    if not plan_t.get("complete"):
        raise PlanningRefused(f"trajectory {name!r} is not complete in version {version.number}")
    details: dict[str, Any] = {"plan_world_frame": version.snapshot.get("world_frame")}
    xr1 = xr2 = None
    picks: dict = {}
    if payload.get("xray1") is not None or payload.get("picks") is not None:
        source = PostOpOutcome.Source.PICKED
        try:
            xr1 = XrayImage.objects.get(pk=int(payload.get("xray1")), patient=plan.patient)
            xr2 = XrayImage.objects.get(pk=int(payload.get("xray2")), patient=plan.patient)
        except (TypeError, ValueError, XrayImage.DoesNotExist):
            raise PlanningRefused("xray1 and xray2 must be post-op X-rays of this patient") from None
        geometry = plan_geometry(xr1, xr2)
        if geometry.world_frame != version.snapshot.get("world_frame") or (
            geometry.world_frame == "ct" and geometry.study_id != version.snapshot.get("study_id")
        ):
            raise PlanningRefused(
                "the post-op views and the plan are not in the same 3D frame (register both "
                "to the plan's CT, or plan and pick both from C-arm angles)"
            )
        if geometry.world_frame == "carm":
            details["warning"] = "compared in the C-arm frame: assumes the patient did not move"
        rows = clean_trajectories([{"name": name, "picks": payload.get("picks")}], geometry)
        if not rows[0]["complete"]:
            raise PlanningRefused(
                "the achieved trajectory needs entry and target picks in both post-op views"
            )
        entry, target = np.array(rows[0]["entry_world"]), np.array(rows[0]["target_world"])
        picks = rows[0]["picks"]
        details["gaps_mm"] = [rows[0]["entry_gap_mm"], rows[0]["target_gap_mm"]]
        details["warnings"] = geometry.warnings
    else:
        source = payload.get("source", PostOpOutcome.Source.ENTERED)
        if source not in (PostOpOutcome.Source.REGISTRATION, PostOpOutcome.Source.ENTERED):
            raise PlanningRefused("source must be 'registration' or 'entered' with entry and target")
        entry = _vector(payload.get("entry"), "entry")
        target = _vector(payload.get("target"), "target")
    if np.linalg.norm(target - entry) < 1e-6:
        raise PlanningRefused("the achieved entry and target coincide")
    dev = traj.deviation(plan_t["entry_world"], plan_t["target_world"], entry, target)
    details.update(dev)
    return PostOpOutcome.objects.create(
        plan=plan,
        version=version,
        trajectory_name=name,
        source=source,
        xray1=xr1,
        xray2=xr2,
        picks=picks,
        achieved_entry=entry.tolist(),
        achieved_target=target.tolist(),
        entry_deviation_mm=dev["entry_mm"],
        tip_deviation_mm=dev["tip_mm"],
        angular_deviation_deg=dev["angle_deg"],
        details=details,
        created_by=user if getattr(user, "is_authenticated", False) else None,
    )


def outcome_json(o: PostOpOutcome) -> dict:
    return {
        "id": o.pk,
        "plan_id": o.plan_id,
        "plan": o.plan.name,
        "patient_mrn": o.plan.patient.mrn,
        "version": o.version.number,
        "trajectory": o.trajectory_name,
        "source": o.source,
        "entry_deviation_mm": o.entry_deviation_mm,
        "tip_deviation_mm": o.tip_deviation_mm,
        "angular_deviation_deg": o.angular_deviation_deg,
        "achieved_entry": o.achieved_entry,
        "achieved_target": o.achieved_target,
        "details": o.details,
        "created_at": o.created_at.isoformat(),
        "created_by": getattr(o.created_by, "username", ""),
    }




def outcomes_overview(user) -> tuple[list[dict], dict]:
    """Post-op outcomes of the patients ``user`` may see, and mean / median / max of the
    entry and tip deviations (mm) and the angular deviation (degrees)."""
    outcomes = scope(
        PostOpOutcome.objects.select_related("plan", "plan__patient", "version"), user, "plan__patient"
    )
    rows = [outcome_json(o) for o in outcomes.order_by("plan__patient__mrn", "created_at")]
    summary: dict = {}
    for key in ("entry_deviation_mm", "tip_deviation_mm", "angular_deviation_deg"):
        values = np.array([row[key] for row in rows], dtype=float)
        if values.size:
            summary[key] = {
                "mean": float(values.mean()),
                "median": float(np.median(values)),
                "max": float(values.max()),
            }
    return rows, summary
