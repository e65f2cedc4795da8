"""Poses for the registration engine: the rigid-transform and C-arm-angle functions of
:mod:`geometry.rigid` and :mod:`geometry.carm`, under the names the engine uses."""

from geometry.carm import carm_angles_from_pose, carm_pose
from geometry.rigid import (
    RIGID_TOL,
    TransformError,
    hat,
    invert_rigid,
    orthonormalised,
    perturb_pose,
    pose_distance,
    random_rotation,
    rotation_angle_deg,
    se3_exp,
    se3_log,
    target_error_mm,
    validate_rigid,
)

__all__ = [
    "RIGID_TOL",
    "TransformError",
    "carm_angles_from_pose",
    "carm_pose",
    "hat",
    "invert_rigid",
    "orthonormalised",
    "perturb_pose",
    "pose_distance",
    "random_rotation",
    "rotation_angle_deg",
    "se3_exp",
    "se3_log",
    "target_error_mm",
    "validate_rigid",
]
