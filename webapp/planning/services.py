"""Planning services: view geometry of X-rays, plan versions, tool poses, outcomes.

Thin Django layer over :mod:`webapp.planning.engine`; every function that takes
user input raises ``ValueError`` with a one-line message on bad input.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from django.db import transaction

from registration.engine.camera import Camera
from registration.engine.pose import carm_pose
from webapp.planning.engine import trajectory as traj
from webapp.planning.engine.transforms import ToolPose, tool_pose_from_payload
from webapp.planning.engine.views_geometry import ViewGeometry, angle_between_views, project
from webapp.planning.models import Plan, PlanVersion, PostOpOutcome, ToolPoseSample
from webapp.records.access import scope
from webapp.records.models import XrayImage
from webapp.xray_view import camera_for_xray, display_uint8, read_view, view_png

MIN_VIEW_ANGLE_DEG = 30.0
DEFAULT_SOURCE_TO_ISOCENTER_RATIO = 0.6  # of SDD when DistanceSourceToPatient is unknown
SNAPSHOT_SCHEMA = "orthofuse.plan/1"
COLOUR_RE = re.compile(r"^#[0-9a-fA-F]{6}$")
MAX_TRAJECTORIES = 20
TOOL_HISTORY = 50


# --------------------------------------------------------------------------- images
def xray_png(xray: XrayImage) -> bytes:
    """The X-ray as a viewer at the source sees it, windowed for display
    (:mod:`webapp.xray_view`); ``XrayUnavailable`` (a ValueError) when it cannot be read."""
    return view_png(xray)


def display_pixels(xray: XrayImage) -> np.ndarray:
    """uint8 (H, W) display image of ``xray`` (for reports)."""
    view = read_view(xray)
    return display_uint8(view.pixels, view.photometric)


# --------------------------------------------------------------------------- geometry
@dataclass
class PlanGeometry:
    views: list[ViewGeometry]
    world_frame: str  # "ct" or "carm"
    study_id: int | None
    angle_deg: float
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return {
            "views": [v.to_json() for v in self.views],
            "world_frame": self.world_frame,
            "study_id": self.study_id,
            "angle_between_views_deg": self.angle_deg,
            "warnings": list(self.warnings),
        }


def intrinsics(xray: XrayImage) -> tuple[Camera, str, bool]:
    """``(camera, source label, calibrated)`` for an X-ray; ValueError when unknown."""
    found = camera_for_xray(xray)
    return found.camera, found.source, found.calibrated


def _registration(xray: XrayImage):
    """The newest successful, not rejected registration of the X-ray, or None."""
    regs = xray.registrations.filter(status="ok").exclude(review_status="rejected")
    for reg in regs.order_by("-created_at"):
        if reg.T_cam_from_world:
            return reg
    return None


def _carm_T(xray: XrayImage, camera: Camera) -> np.ndarray:
    sid = (
        xray.distance_source_to_patient_mm
        or DEFAULT_SOURCE_TO_ISOCENTER_RATIO * camera.source_to_detector_mm
    )
    return carm_pose(
        xray.primary_angle_deg or 0.0, xray.secondary_angle_deg or 0.0, sid, (0.0, 0.0, 0.0)
    )


def plan_geometry(xray1: XrayImage, xray2: XrayImage) -> PlanGeometry:
    """Geometry of the two views in a common world frame, with warnings for the user."""
    cams, regs, warnings = [], [], []
    for i, xray in enumerate((xray1, xray2), start=1):
        camera, k_source, calibrated = intrinsics(xray)
        if not calibrated:
            warnings.append(
                f"View {i} lacks a calibration: intrinsics come from the image header, "
                "so 3D positions are approximate."
            )
        if xray.carm is not None and xray.carm.needs_dewarping and not xray.dewarped_file:
            warnings.append(
                f"View {i} comes from an image intensifier and is not dewarped yet: its "
                "distortion (several mm at the edge) is not corrected."
            )
        cams.append((camera, k_source))
        regs.append(_registration(xray))
    registered = all(r is not None for r in regs) and regs[0].study_id == regs[1].study_id
    if not registered and any(r is not None for r in regs):
        warnings.append(
            "Only one view is registered to this CT (or they are registered to different CTs): "
            "both views use their C-arm angles instead."
        )
    views = []
    for i, ((camera, k_source), reg, xray) in enumerate(
        zip(cams, regs, (xray1, xray2), strict=True), 1
    ):
        if registered:
            T = np.asarray(reg.T_cam_from_world, dtype=np.float64)
            pose_source = f"registration #{reg.pk} to CT study #{reg.study_id}"
        else:
            T = _carm_T(xray, camera)
            pose_source = (
                f"C-arm angles (LAO {xray.primary_angle_deg or 0:.0f}°, "
                f"cranial {xray.secondary_angle_deg or 0:.0f}°), not registered"
            )
        views.append(
            ViewGeometry(
                K=camera.K,
                T_cam_from_world=T,
                width=camera.width,
                height=camera.height,
                source={"K": k_source, "pose": pose_source, "xray_id": xray.pk, "view": i},
                pixel_spacing_mm=camera.pixel_spacing_mm,
            )
        )
    angle = angle_between_views(views[0], views[1])
    if angle < MIN_VIEW_ANGLE_DEG:
        warnings.insert(
            0,
            f"The two views are only {angle:.0f}° apart (at least {MIN_VIEW_ANGLE_DEG:.0f}° "
            "recommended): depth along the views is poorly determined.",
        )
    return PlanGeometry(
        views=views,
        world_frame="ct" if registered else "carm",
        study_id=regs[0].study_id if registered else None,
        angle_deg=angle,
        warnings=warnings,
    )


# --------------------------------------------------------------------------- versions
def _number(value: Any, name: str, lo: float, hi: float) -> float:
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a number")
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number") from None
    if not math.isfinite(x) or not lo <= x <= hi:
        raise ValueError(f"{name} must be between {lo:g} and {hi:g}, got {value!r}")
    return x


def _pick(value: Any, name: str, view: ViewGeometry) -> list[float] | None:
    if value is None:
        return None
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise ValueError(f"{name} must be [u, v] in pixels")
    margin = max(view.width, view.height)  # picks may lie a little outside the image
    u = _number(value[0], f"{name} u", -margin, view.width + margin)
    v = _number(value[1], f"{name} v", -margin, view.height + margin)
    return [u, v]


def clean_trajectories(items: Any, geometry: PlanGeometry) -> list[dict]:
    """Validate trajectories from the client and compute their 3D data with the engine."""
    if not isinstance(items, list):
        raise ValueError("trajectories must be a list")
    if len(items) > MAX_TRAJECTORIES:
        raise ValueError(f"at most {MAX_TRAJECTORIES} trajectories per plan")
    out, names = [], set()
    v1, v2 = geometry.views
    for idx, item in enumerate(items, 1):
        if not isinstance(item, dict):
            raise ValueError(f"trajectory {idx} must be an object")
        name = str(item.get("name", "")).strip()
        if not name or len(name) > 100:
            raise ValueError(f"trajectory {idx} needs a name of 1 to 100 characters")
        if name in names:
            raise ValueError(f"two trajectories are named {name!r}")
        names.add(name)
        colour = str(item.get("colour", "#ff8800"))
        if not COLOUR_RE.match(colour):
            raise ValueError(f"trajectory {name!r}: colour must be #rrggbb")
        diameter = _number(
            item.get("diameter_mm", 6.5), f"trajectory {name!r} diameter_mm", 0.1, 50
        )
        length = item.get("length_mm")
        length = (
            None
            if length in (None, "")
            else _number(length, f"trajectory {name!r} length_mm", 1, 500)
        )
        picks_in = item.get("picks") or {}
        if not isinstance(picks_in, dict):
            raise ValueError(f"trajectory {name!r}: picks must be an object")
        picks = {}
        for end in ("entry", "target"):
            p = picks_in.get(end) or {}
            if not isinstance(p, dict):
                raise ValueError(f"trajectory {name!r}: picks.{end} must be an object")
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
            except ValueError as exc:
                raise ValueError(f"trajectory {name!r}: {exc}") from None
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
def save_version(plan: Plan, user, trajectories: Any, note: str = "") -> PlanVersion:
    """Validate, compute and store a new version of ``plan`` (numbers count up from 1)."""
    geometry = plan_geometry(plan.xray1, plan.xray2)
    cleaned = clean_trajectories(trajectories, geometry)
    Plan.objects.select_for_update().filter(pk=plan.pk).first()
    latest = plan.versions.order_by("-number").first()
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
        raise ValueError("the plan needs a name of 1 to 200 characters")
    if xray1.pk == xray2.pk:
        raise ValueError("choose two different X-ray views")
    if xray1.patient_id != patient.pk or xray2.patient_id != patient.pk:
        raise ValueError("both X-rays must belong to the patient")
    plan_geometry(xray1, xray2)  # refuses views without geometry before storing anything
    plan = Plan.objects.create(
        patient=patient, name=name, xray1=xray1, xray2=xray2, created_by=user
    )
    save_version(plan, user, [], "")
    return plan


# --------------------------------------------------------------------------- tool poses
def tool_state(
    plan: Plan, sample: ToolPoseSample | None, geometry: PlanGeometry | None = None
) -> dict:
    """Tool projection on both views and its distances to every planned trajectory."""
    if sample is None:
        return {"tool": None}
    geometry = geometry or plan_geometry(plan.xray1, plan.xray2)
    tool = ToolPose(np.asarray(sample.tip, float), np.asarray(sample.axis, float), sample.chain)
    latest = plan.latest_version
    per_traj = []
    for t in latest.snapshot.get("trajectories", []) if latest else []:
        if t.get("complete") and t.get("measured_length_mm", 0) > 1e-6:
            per_traj.append(
                {"name": t["name"], **traj.tool_vs_plan(tool, t["entry_world"], t["target_world"])}
            )
    return {
        "tool": {
            "id": sample.pk,
            "received_at": sample.received_at.isoformat(),
            **tool.to_json(),
            "extension_mm": sample.extension_mm,
            "world_frame": geometry.world_frame,
            "views": [traj.tool_projection(v, tool, sample.extension_mm) for v in geometry.views],
            "vs_plan": per_traj,
        }
    }


@transaction.atomic
def receive_tool_pose(plan: Plan, user, payload: Any) -> ToolPoseSample:
    tool = tool_pose_from_payload(payload)
    extension = payload.get("extension_mm", 100.0) if isinstance(payload, dict) else 100.0
    extension = _number(extension, "extension_mm", 0, 1000)
    sample = ToolPoseSample.objects.create(
        plan=plan,
        sent_by=user if getattr(user, "is_authenticated", False) else None,
        tip=tool.tip.tolist(),
        axis=tool.axis.tolist(),
        chain=tool.chain,
        extension_mm=extension,
    )
    old = plan.tool_poses.order_by("-received_at", "-id").values_list("pk", flat=True)[
        TOOL_HISTORY:
    ]
    ToolPoseSample.objects.filter(pk__in=list(old)).delete()
    return sample


# --------------------------------------------------------------------------- post-op
def _vector(value: Any, name: str) -> np.ndarray:
    if not isinstance(value, (list, tuple)) or len(value) != 3:
        raise ValueError(f"{name} must be [x, y, z] in mm")
    return np.array([_number(x, name, -1e5, 1e5) for x in value])


@transaction.atomic
def record_outcome(plan: Plan, user, payload: Any) -> PostOpOutcome:
    """Store the achieved trajectory of one planned trajectory and its deviations.

    ``payload``: ``{"trajectory": name, "version": n (default latest), and either
    "xray1"/"xray2" ids + "picks" (entry/target in both post-op views) or
    "entry"/"target" world mm with "source": "registration" | "entered"}``."""
    if not isinstance(payload, dict):
        raise ValueError("the outcome must be a JSON object")
    versions = plan.versions.all()
    if payload.get("version") is not None:
        version = versions.filter(number=payload.get("version")).first()
        if version is None:
            raise ValueError(f"plan has no version {payload.get('version')!r}")
    else:
        version = versions.order_by("-number").first()
    planned = {t["name"]: t for t in version.snapshot.get("trajectories", [])}
    name = str(payload.get("trajectory", ""))
    if name not in planned:
        raise ValueError(f"version {version.number} has no trajectory named {name!r}")
    plan_t = planned[name]
    if not plan_t.get("complete"):
        raise ValueError(f"trajectory {name!r} is not complete in version {version.number}")
    details: dict[str, Any] = {"plan_world_frame": version.snapshot.get("world_frame")}
    xr1 = xr2 = None
    picks: dict = {}
    if payload.get("xray1") is not None or payload.get("picks") is not None:
        source = PostOpOutcome.Source.PICKED
        try:
            xr1 = XrayImage.objects.get(pk=int(payload.get("xray1")), patient=plan.patient)
            xr2 = XrayImage.objects.get(pk=int(payload.get("xray2")), patient=plan.patient)
        except (TypeError, ValueError, XrayImage.DoesNotExist):
            raise ValueError("xray1 and xray2 must be post-op X-rays of this patient") from None
        geometry = plan_geometry(xr1, xr2)
        if geometry.world_frame != version.snapshot.get("world_frame") or (
            geometry.world_frame == "ct" and geometry.study_id != version.snapshot.get("study_id")
        ):
            raise ValueError(
                "the post-op views and the plan are not in the same 3D frame (register both "
                "to the plan's CT, or plan and pick both from C-arm angles)"
            )
        if geometry.world_frame == "carm":
            details["warning"] = "compared in the C-arm frame: assumes the patient did not move"
        rows = clean_trajectories([{"name": name, "picks": payload.get("picks")}], geometry)
        if not rows[0]["complete"]:
            raise ValueError(
                "the achieved trajectory needs entry and target picks in both post-op views"
            )
        entry, target = np.array(rows[0]["entry_world"]), np.array(rows[0]["target_world"])
        picks = rows[0]["picks"]
        details["gaps_mm"] = [rows[0]["entry_gap_mm"], rows[0]["target_gap_mm"]]
        details["warnings"] = geometry.warnings
    else:
        source = payload.get("source", PostOpOutcome.Source.ENTERED)
        if source not in (PostOpOutcome.Source.REGISTRATION, PostOpOutcome.Source.ENTERED):
            raise ValueError("source must be 'registration' or 'entered' with entry and target")
        entry = _vector(payload.get("entry"), "entry")
        target = _vector(payload.get("target"), "target")
    if np.linalg.norm(target - entry) < 1e-6:
        raise ValueError("the achieved entry and target coincide")
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
