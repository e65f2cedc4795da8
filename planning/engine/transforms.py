"""The optical-tracking chain of a navigated tool (no Django).

All matrices are 4x4 homogeneous ``T_a_from_b`` (frame-b mm -> frame-a mm). Every matrix
entering from outside goes through the one validator,
:func:`geometry.rigid.validate_rigid`, which names the offending matrix in its one-line
message.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from geometry.rigid import TransformError, apply, compose, invert_rigid, rotate, validate_rigid


def check_vector(value: Any, name: str, *, unit: bool = False) -> np.ndarray:
    """A finite 3-vector (mm); with ``unit=True`` normalised, refusing a zero vector."""
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise TransformError(f"{name} must be three numbers [x, y, z]") from None
    if arr.shape != (3,):
        raise TransformError(f"{name} must be three numbers [x, y, z], got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise TransformError(f"{name} contains NaN or infinite values")
    if unit:
        norm = float(np.linalg.norm(arr))
        if norm < 1e-9:
            raise TransformError(f"{name} must not be the zero vector")
        arr = arr / norm
    return arr



@dataclass(frozen=True)
class ToolPose:
    """A tracked tool in the plan's world frame: tip (mm) and unit axis (tip pointing
    forward, the direction the tool advances)."""

    tip: np.ndarray
    axis: np.ndarray
    chain: str  # "world tip+axis", "world 4x4", "tracker via patient reference", ...

    def to_json(self) -> dict:
        return {
            "tip": [float(x) for x in self.tip],
            "axis": [float(x) for x in self.axis],
            "chain": self.chain,
        }


def tool_pose_from_payload(data: Any) -> ToolPose:
    """Parse a tool pose in one of these forms (all lengths mm) into world coordinates.

    * ``{"frame": "ct", "tip": [x,y,z], "axis": [dx,dy,dz]}``
    * ``{"frame": "ct", "T_ct_from_tool": 4x4}``
    * ``{"frame": "tracker", "T_tracker_from_tool": 4x4, "T_tracker_from_patientref": 4x4,
      "T_patientref_from_ct": 4x4}`` (patient reference registered to the CT)
    * ``{"frame": "tracker", "T_tracker_from_tool": 4x4, "T_tracker_from_carmref": 4x4,
      "T_carmref_from_world": 4x4}`` (C-arm / phantom reference frame, the classic
      two-view navigation setup where the image geometry is known in that frame)

    With a 4x4 the tool's tip and axis in tool coordinates are ``tip_in_tool`` (default
    origin) and ``axis_in_tool`` (default +z). ``"world"`` is accepted as a synonym of
    ``"ct"`` (the plan's 3D frame). Raises :class:`TransformError` naming the problem.
    """
    if not isinstance(data, dict):
        raise TransformError("tool pose must be a JSON object")
    frame = data.get("frame", "ct")
    if frame not in ("ct", "world", "tracker"):
        raise TransformError(f"frame must be 'ct' or 'tracker', got {frame!r}")

    tip_in_tool = check_vector(data.get("tip_in_tool", [0.0, 0.0, 0.0]), "tip_in_tool")
    axis_in_tool = check_vector(
        data.get("axis_in_tool", [0.0, 0.0, 1.0]), "axis_in_tool", unit=True
    )

    if frame in ("ct", "world"):
        if "T_ct_from_tool" in data or "T_world_from_tool" in data:
            key = "T_ct_from_tool" if "T_ct_from_tool" in data else "T_world_from_tool"
            T = validate_rigid(data[key], key)
            return ToolPose(apply(T, tip_in_tool), rotate(T, axis_in_tool), f"{frame} 4x4")
        if "tip" not in data or "axis" not in data:
            raise TransformError("a CT-frame tool pose needs tip and axis, or T_ct_from_tool")
        tip = check_vector(data["tip"], "tip")
        axis = check_vector(data["axis"], "axis", unit=True)
        return ToolPose(tip, axis, f"{frame} tip+axis")

    if "T_tracker_from_tool" not in data:
        raise TransformError("a tracker-frame tool pose needs T_tracker_from_tool")
    T_tracker_from_tool = validate_rigid(data["T_tracker_from_tool"], "T_tracker_from_tool")
    if "T_tracker_from_patientref" in data:
        T_tracker_from_ref = validate_rigid(
            data["T_tracker_from_patientref"], "T_tracker_from_patientref"
        )
        if "T_patientref_from_ct" not in data:
            raise TransformError("T_patientref_from_ct is required with T_tracker_from_patientref")
        T_ref_from_world = validate_rigid(data["T_patientref_from_ct"], "T_patientref_from_ct")
        chain = "tracker via patient reference"
    elif "T_tracker_from_carmref" in data:
        T_tracker_from_ref = validate_rigid(data["T_tracker_from_carmref"], "T_tracker_from_carmref")
        if "T_carmref_from_world" not in data:
            raise TransformError("T_carmref_from_world is required with T_tracker_from_carmref")
        T_ref_from_world = validate_rigid(data["T_carmref_from_world"], "T_carmref_from_world")
        chain = "tracker via C-arm reference"
    else:
        raise TransformError(
            "a tracker-frame tool pose needs T_tracker_from_patientref + T_patientref_from_ct "
            "or T_tracker_from_carmref + T_carmref_from_world"
        )
    T_world_from_tool = compose(
        invert_rigid(T_ref_from_world), invert_rigid(T_tracker_from_ref), T_tracker_from_tool
    )
    return ToolPose(
        apply(T_world_from_tool, tip_in_tool), rotate(T_world_from_tool, axis_in_tool), chain
    )


def rotation_about(axis: np.ndarray, angle_rad: float) -> np.ndarray:
    """3x3 rotation by ``angle_rad`` about unit ``axis`` (Rodrigues)."""
    a = np.asarray(axis, dtype=np.float64)
    a = a / np.linalg.norm(a)
    Kx = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
    return np.eye(3) + np.sin(angle_rad) * Kx + (1 - np.cos(angle_rad)) * Kx @ Kx


def random_rigid(
    rng: np.random.Generator, max_angle_deg: float = 180.0, max_shift_mm: float = 200.0
) -> np.ndarray:
    """A random rigid transform (for tests and simulations)."""
    axis = rng.normal(size=3)
    T = np.eye(4)
    T[:3, :3] = rotation_about(axis, np.deg2rad(rng.uniform(-max_angle_deg, max_angle_deg)))
    T[:3, 3] = rng.uniform(-max_shift_mm, max_shift_mm, size=3)
    return T
