"""Planning services, one concept per module (thin layers over :mod:`planning.engine`);
every function that takes user input raises ``ValueError`` with a one-line message on bad
input."""

from webapp.planning.services.geometry import (
    PlanGeometry,
    display_pixels,
    intrinsics,
    plan_geometry,
    xray_png,
)
from webapp.planning.services.outcomes import (
    outcome_json,
    outcomes_overview,
    record_outcome,
)
from webapp.planning.services.tool_poses import (
    TOOL_HISTORY,
    receive_tool_pose,
    tool_state,
)
from webapp.planning.services.versions import (
    PlanConflict,
    clean_trajectories,
    create_plan,
    reprojected,
    save_version,
    snapshot_for,
    version_json,
)

__all__ = [
    "PlanConflict",
    "TOOL_HISTORY",
    "PlanGeometry",
    "clean_trajectories",
    "create_plan",
    "display_pixels",
    "intrinsics",
    "outcome_json",
    "outcomes_overview",
    "plan_geometry",
    "receive_tool_pose",
    "record_outcome",
    "reprojected",
    "save_version",
    "snapshot_for",
    "tool_state",
    "version_json",
    "xray_png",
]
