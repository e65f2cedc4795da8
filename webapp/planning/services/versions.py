"""Plans and their versions: creating a plan, validating trajectories picked in two views,
snapshots and their JSON."""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np
from django.db import transaction

from planning.engine import trajectory as traj
from planning.engine.errors import PlanningRefused
from planning.engine.views_geometry import ViewGeometry, project
from webapp.planning.models import Plan, PlanVersion
from webapp.planning.services.geometry import PlanGeometry, plan_geometry
from webapp.records.models import XrayImage

SNAPSHOT_SCHEMA = "orthofuse.plan/1"
COLOUR_RE = re.compile(r"^#[0-9a-fA-F]{6}$")
MAX_TRAJECTORIES = 20


# --------------------------------------------------------------------------- versions
def bounded_number(value: Any, name: str, lo: float, hi: float) -> float:
    if isinstance(value, bool):
        raise PlanningRefused(f"{name} must be a number")
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise PlanningRefused(f"{name} must be a number") from None
    if not math.isfinite(x) or not lo <= x <= hi:
        raise PlanningRefused(f"{name} must be between {lo:g} and {hi:g}, got {value!r}")
    return x


def _pick(value: Any, name: str, view: ViewGeometry) -> list[float] | None:
    if value is None:
        return None
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise PlanningRefused(f"{name} must be [u, v] in pixels")
    margin = max(view.width, view.height)  # picks may lie a little outside the image
    u = bounded_number(value[0], f"{name} u", -margin, view.width + margin)
    v = bounded_number(value[1], f"{name} v", -margin, view.height + margin)
    return [u, v]


def clean_trajectories(items: Any, geometry: PlanGeometry) -> list[dict]:
    """Validate trajectories from the client and compute their 3D data with the engine."""
    if not isinstance(items, list):
        raise PlanningRefused("trajectories must be a list")
    if len(items) > MAX_TRAJECTORIES:
        raise PlanningRefused(f"at most {MAX_TRAJECTORIES} trajectories per plan")
    out, names = [], set()
    v1, v2 = geometry.views
    for idx, item in enumerate(items, 1):
        if not isinstance(item, dict):
            raise PlanningRefused(f"trajectory {idx} must be an object")
        name = str(item.get("name", "")).strip()
        if not name or len(name) > 100:
            raise PlanningRefused(f"trajectory {idx} needs a name of 1 to 100 characters")
        if name in names:
            raise PlanningRefused(f"two trajectories are named {name!r}")
        names.add(name)
        colour = str(item.get("colour", "#ff8800"))
        if not COLOUR_RE.match(colour):
            raise PlanningRefused(f"trajectory {name!r}: colour must be #rrggbb")
        diameter = bounded_number(
            item.get("diameter_mm", 6.5), f"trajectory {name!r} diameter_mm", 0.1, 50
        )
        length = item.get("length_mm")
        length = (
            None
            if length in (None, "")
            else bounded_number(length, f"trajectory {name!r} length_mm", 1, 500)
        )
        picks_in = item.get("picks") or {}
        if not isinstance(picks_in, dict):
            raise PlanningRefused(f"trajectory {name!r}: picks must be an object")
        picks = {}
        for end in ("entry", "target"):
            p = picks_in.get(end) or {}
            if not isinstance(p, dict):
                raise PlanningRefused(f"trajectory {name!r}: picks.{end} must be an object")
            picks[end] = {
                "view1": _pick(p.get("view1"), f"trajectory {name!r} {end} view 1", v1),
                "view2": _pick(p.get("view2"), f"trajectory {name!r} {end} view 2", v2),
            }
        row: dict[str, Any] = {
            "name": name,
            "colour": colour,
            "diameter_mm": diameter,
            "length_mm": length,
            "picks": picks,
            "complete": all(picks[e][v] is not None for e in picks for v in ("view1", "view2")),
        }
        if row["complete"]:
            try:
                t = traj.trajectory_from_picks(v1, v2, picks)
            except PlanningRefused as exc:
                raise PlanningRefused(f"trajectory {name!r}: {exc}") from None
            row.update(
                entry_world=t["entry"].tolist(),
                target_world=t["target"].tolist(),
                entry_gap_mm=t["entry_gap_mm"],
                target_gap_mm=t["target_gap_mm"],
                measured_length_mm=t["measured_length_mm"],
                image_angle_view1_deg=t["image_angle_view1_deg"],
                image_angle_view2_deg=t["image_angle_view2_deg"],
            )
            if row["measured_length_mm"] > 1e-6:
                row["anatomical"] = traj.anatomical_angles(t["entry"], t["target"])
            if row["length_mm"] is None:
                row["length_mm"] = round(row["measured_length_mm"], 1)
            if geometry.world_frame == "ct":
                row["ct"] = {
                    "entry_lps": row["entry_world"],
                    "target_lps": row["target_world"],
                    "study_id": geometry.study_id,
                }
        out.append(row)
    return out


class PlanConflict(PlanningRefused):
    """Another version was saved after the one an editor started from. ``latest`` is that
    version; ``changes`` says what it changed against ``based_on``."""

    def __init__(self, plan: Plan, based_on: int, latest: PlanVersion) -> None:
        base = plan.versions.filter(number=based_on).first()
        before = base.snapshot.get("trajectories", []) if base else []
        self.latest = latest
        self.based_on = based_on
        self.changes = _summary(before, latest.snapshot.get("trajectories", []))
        author = getattr(latest.author, "username", "") or "someone"
        super().__init__(
            f"{author} saved version {latest.number} since you opened version {based_on} "
            f"({self.changes}): merge their trajectories or save over them"
        )


def _summary(previous: list[dict], current: list[dict]) -> str:
    before = {t["name"]: t for t in previous}
    after = {t["name"]: t for t in current}
    parts = []
    added = [n for n in after if n not in before]
    removed = [n for n in before if n not in after]
    moved = [n for n in after if n in before and after[n]["picks"] != before[n]["picks"]]
    edited = [
        n
        for n in after
        if n in before
        and any(after[n].get(k) != before[n].get(k) for k in ("colour", "diameter_mm", "length_mm"))
    ]
    for label, names in (
        ("added", added),
        ("removed", removed),
        ("moved picks of", moved),
        ("edited", edited),
    ):
        if names:
            parts.append(f"{label} {', '.join(names)}")
    return "; ".join(parts) or "no change"


def snapshot_for(plan: Plan, geometry: PlanGeometry, trajectories: list[dict]) -> dict:
    return {
        "schema": SNAPSHOT_SCHEMA,
        "plan": {"id": plan.pk, "name": plan.name, "patient_mrn": plan.patient.mrn},
        "xray_ids": [plan.xray1_id, plan.xray2_id],
        **geometry.to_json(),
        "trajectories": trajectories,
    }


@transaction.atomic
def save_version(
    plan: Plan, user, trajectories: Any, note: str = "", *, based_on: Any = None
) -> PlanVersion:
    """Validate, compute and store a new version of ``plan`` (numbers count up from 1).

    ``based_on`` is the version number the editor started from (``0`` or None for a plan
    without versions yet); when another version was saved since, :class:`PlanConflict`
    says what it changed and nothing is stored."""
    geometry = plan_geometry(plan.xray1, plan.xray2)
    cleaned = clean_trajectories(trajectories, geometry)
    Plan.objects.select_for_update().filter(pk=plan.pk).first()
    latest = plan.versions.order_by("-number").first()
    if based_on is not None:
        base = int(bounded_number(based_on, "based_on", 0, 10**9))
        if (latest.number if latest else 0) != base:
            raise PlanConflict(plan, base, latest)
    previous = latest.snapshot.get("trajectories", []) if latest else []
    summary = "created" if latest is None else _summary(previous, cleaned)
    note = str(note or "").strip()[:200]
    if note:
        summary = f"{note} ({summary})"
    version = PlanVersion.objects.create(
        plan=plan,
        number=(latest.number + 1) if latest else 1,
        author=user if getattr(user, "is_authenticated", False) else None,
        summary=summary[:500],
        snapshot=snapshot_for(plan, geometry, cleaned),
    )
    plan.save(update_fields=["updated_at"])
    return version


@transaction.atomic
def create_plan(patient, user, name: str, xray1: XrayImage, xray2: XrayImage) -> Plan:
    name = (name or "").strip()
    if not name or len(name) > 200:
        raise PlanningRefused("the plan needs a name of 1 to 200 characters")
    if xray1.pk == xray2.pk:
        raise PlanningRefused("choose two different X-ray views")
    if xray1.patient_id != patient.pk or xray2.patient_id != patient.pk:
        raise PlanningRefused("both X-rays must belong to the patient")
    plan_geometry(xray1, xray2)  # refuses views without geometry before storing anything
    plan = Plan.objects.create(
        patient=patient, name=name, xray1=xray1, xray2=xray2, created_by=user
    )
    save_version(plan, user, [], "")
    return plan




def version_json(version: PlanVersion) -> dict:
    return {
        "id": version.pk,
        "number": version.number,
        "author": getattr(version.author, "username", ""),
        "created_at": version.created_at.isoformat(),
        "summary": version.summary,
        "snapshot": version.snapshot,
    }


def reprojected(snapshot: dict) -> list[dict]:
    """Pixel positions of each complete trajectory's 3D ends in both views."""
    views = [ViewGeometry.from_json(v) for v in snapshot.get("views", [])]
    out = []
    for t in snapshot.get("trajectories", []):
        if not t.get("complete"):
            continue
        pts = np.array([t["entry_world"], t["target_world"]])
        out.append({"name": t["name"], "views": [project(v, pts).tolist() for v in views]})
    return out
