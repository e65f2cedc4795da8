"""Trajectory maths: triangulated trajectories, angles, deviations, tool vs plan (no Django).

Lengths in mm, angles in degrees. ``world`` is the plan's 3D frame (CT LPS when both
views are registered). A trajectory runs from ``entry`` to ``target`` (the tip end).

Anatomical angles of a direction ``d = unit(target - entry)`` in LPS (+x left,
+y posterior, +z superior), radiographic definitions (Murray 1993):

* ``anteversion_deg``: angle between ``d`` and the coronal plane, ``asin(-d_y)``;
  positive when the trajectory heads anteriorly.
* ``inclination_deg``: angle between the longitudinal (S-I) axis and the projection of
  ``d`` on the coronal plane, folded to 0..90.
* ``cranial_deg``: angle with the axial plane, ``asin(d_z)``, positive toward the head.
* ``axial_deg``: direction in the axial plane, ``atan2(d_x, -d_y)``: 0 = straight
  anterior, +90 = toward the patient's left.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from planning.engine.errors import PlanningRefused
from planning.engine.transforms import ToolPose
from planning.engine.views_geometry import ViewGeometry, depth, project, triangulate


def unit(v: Any) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64)
    n = float(np.linalg.norm(v))
    if n < 1e-12:
        raise PlanningRefused("entry and target coincide: the trajectory has no direction")
    return v / n


def angle_between_deg(a: Any, b: Any) -> float:
    """Angle (0..180°) between two direction vectors."""
    c = float(np.clip(unit(a) @ unit(b), -1.0, 1.0))
    return float(np.degrees(np.arccos(c)))


def anatomical_angles(entry: Any, target: Any) -> dict:
    """Anatomical angles (degrees) of the trajectory entry -> target in LPS (see module)."""
    d = unit(np.asarray(target, float) - np.asarray(entry, float))
    dx, dy, dz = d
    return {
        "inclination_deg": float(np.degrees(np.arctan2(abs(dx), abs(dz)))),
        "anteversion_deg": float(np.degrees(np.arcsin(np.clip(-dy, -1, 1)))),
        "cranial_deg": float(np.degrees(np.arcsin(np.clip(dz, -1, 1)))),
        "axial_deg": float(np.degrees(np.arctan2(dx, -dy))),
    }


def image_angle_deg(uv_entry: Any, uv_target: Any) -> float:
    """Angle of the projected trajectory in the image, degrees in (-180, 180], measured
    from the image's +u axis (to the right) counter-clockwise as seen on screen (rows go
    down, so the v difference is negated)."""
    du = float(uv_target[0]) - float(uv_entry[0])
    dv = float(uv_target[1]) - float(uv_entry[1])
    return float(np.degrees(np.arctan2(-dv, du)))


def trajectory_from_picks(view1: ViewGeometry, view2: ViewGeometry, picks: dict) -> dict:
    """Triangulate a trajectory from its four picks.

    ``picks = {"entry": {"view1": [u, v], "view2": [u, v]}, "target": {...}}`` in pixels.
    Returns ``entry``/``target`` (world mm), ``entry_gap_mm``/``target_gap_mm`` (ray gaps),
    ``measured_length_mm``, ``direction`` and the image angles in both views (of the
    reprojected 3D points)."""
    out: dict[str, Any] = {}
    for end in ("entry", "target"):
        p = picks.get(end) or {}
        if p.get("view1") is None or p.get("view2") is None:
            raise PlanningRefused(f"{end} needs a pick in both views")
        point, gap = triangulate(view1, p["view1"], view2, p["view2"])
        out[end] = point
        out[f"{end}_gap_mm"] = gap
    entry, target = out["entry"], out["target"]
    out["measured_length_mm"] = float(np.linalg.norm(target - entry))
    out["direction"] = unit(target - entry) if out["measured_length_mm"] > 1e-9 else np.zeros(3)
    for key, view in (("view1", view1), ("view2", view2)):
        uv = project(view, np.stack([entry, target]))
        out[f"image_angle_{key}_deg"] = image_angle_deg(uv[0], uv[1])
    return out


def deviation(plan_entry: Any, plan_target: Any, achieved_entry: Any, achieved_target: Any) -> dict:
    """Achieved vs planned trajectory: entry and tip (target) distances in mm and the
    angle between the two axes in degrees; also the lateral offset of the achieved tip
    from the planned axis and its depth difference along the axis (mm)."""
    pe, pt = np.asarray(plan_entry, float), np.asarray(plan_target, float)
    ae, at = np.asarray(achieved_entry, float), np.asarray(achieved_target, float)
    d_plan = unit(pt - pe)
    offset = at - pt
    along = float(offset @ d_plan)
    return {
        "entry_mm": float(np.linalg.norm(ae - pe)),
        "tip_mm": float(np.linalg.norm(at - pt)),
        "angle_deg": angle_between_deg(pt - pe, at - ae),
        "tip_lateral_mm": float(np.linalg.norm(offset - along * d_plan)),
        "tip_depth_mm": along,
    }


def point_to_segment_mm(p: Any, a: Any, b: Any) -> float:
    p, a, b = (np.asarray(x, float) for x in (p, a, b))
    ab = b - a
    s = float(np.clip((p - a) @ ab / max(float(ab @ ab), 1e-12), 0.0, 1.0))
    return float(np.linalg.norm(p - (a + s * ab)))


def point_to_line_mm(p: Any, a: Any, b: Any) -> float:
    p, a, b = (np.asarray(x, float) for x in (p, a, b))
    d = unit(b - a)
    r = p - a
    return float(np.linalg.norm(r - (r @ d) * d))


def tool_vs_plan(tool: ToolPose, entry: Any, target: Any) -> dict:
    """Tracked tool vs a planned trajectory: ``tip_to_plan_mm`` (tip to the planned
    segment), ``tip_to_axis_mm`` (to the infinite planned axis), ``tip_to_target_mm``,
    ``tip_to_entry_mm`` and ``axis_angle_deg`` (tool axis vs entry -> target)."""
    return {
        "tip_to_plan_mm": point_to_segment_mm(tool.tip, entry, target),
        "tip_to_axis_mm": point_to_line_mm(tool.tip, entry, target),
        "tip_to_target_mm": float(np.linalg.norm(tool.tip - np.asarray(target, float))),
        "tip_to_entry_mm": float(np.linalg.norm(tool.tip - np.asarray(entry, float))),
        "axis_angle_deg": angle_between_deg(
            tool.axis, np.asarray(target, float) - np.asarray(entry, float)
        ),
    }


def tool_projection(
    view: ViewGeometry, tool: ToolPose, extension_mm: float = 100.0, body_mm: float = 150.0
) -> dict:
    """Pixels of the tool in ``view``: ``tip``, ``tail`` (``body_mm`` behind the tip) and
    ``extension`` (``extension_mm`` ahead along the axis); ``visible`` is False when the
    tip is behind the source."""
    pts = np.stack([tool.tip, tool.tip - body_mm * tool.axis, tool.tip + extension_mm * tool.axis])
    uv = project(view, pts)
    visible = bool(np.all(depth(view, pts) > 0) and np.all(np.isfinite(uv)))
    return {
        "tip": uv[0].tolist(),
        "tail": uv[1].tolist(),
        "extension": uv[2].tolist(),
        "visible": visible,
    }
