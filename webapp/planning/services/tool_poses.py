"""Tool poses sent by a navigation system during surgery, and the tool state shown."""

from __future__ import annotations

from typing import Any

import numpy as np
from django.db import transaction

from planning.engine import trajectory as traj
from planning.engine.transforms import ToolPose, tool_pose_from_payload
from webapp.planning.models import Plan, ToolPoseSample
from webapp.planning.services.geometry import PlanGeometry, plan_geometry
from webapp.planning.services.versions import bounded_number

TOOL_HISTORY = 50


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
    extension = bounded_number(extension, "extension_mm", 0, 1000)
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
