"""Rigid-transform validation and the optical-tracking chain of a navigated tool."""

from __future__ import annotations

import numpy as np
import pytest

from geometry.rigid import TransformError, compose, invert_rigid, validate_rigid
from planning.engine.transforms import random_rigid, tool_pose_from_payload


def test_invert_and_compose_round_trip():
    rng = np.random.default_rng(1)
    for _ in range(20):
        T = random_rigid(rng)
        np.testing.assert_allclose(compose(T, invert_rigid(T)), np.eye(4), atol=1e-12)
        np.testing.assert_allclose(invert_rigid(invert_rigid(T)), T, atol=1e-12)


@pytest.mark.parametrize(
    "matrix, message",
    [
        (np.eye(3), "4x4"),
        ([[1, 0, 0, 0]] * 4, "last row"),
        (np.diag([1.1, 1.0, 1.0, 1.0]), "not rigid"),
        (np.diag([-1.0, 1.0, 1.0, 1.0]), "determinant"),
        ("abc", "4x4"),
    ],
)
def test_check_rigid_refuses_with_named_messages(matrix, message):
    with pytest.raises(TransformError) as err:
        validate_rigid(matrix, "T_tracker_from_tool")
    assert "T_tracker_from_tool" in str(err.value)
    assert message in str(err.value)


def test_check_rigid_refuses_nan():
    T = np.eye(4)
    T[0, 3] = np.nan
    with pytest.raises(TransformError, match="T_x_from_y contains NaN"):
        validate_rigid(T, "T_x_from_y")


def test_tracker_chain_via_patient_reference_matches_direct_pose():
    rng = np.random.default_rng(7)
    T_ct_from_tool = random_rigid(rng)
    T_tracker_from_patientref = random_rigid(rng)
    T_patientref_from_ct = random_rigid(rng)
    # the tracker sees the tool where the CT pose puts it
    T_tracker_from_tool = T_tracker_from_patientref @ T_patientref_from_ct @ T_ct_from_tool
    tip_in_tool = np.array([0.0, 0.0, 120.0])
    axis_in_tool = np.array([0.0, 0.0, 1.0])
    pose = tool_pose_from_payload(
        {
            "frame": "tracker",
            "T_tracker_from_tool": T_tracker_from_tool.tolist(),
            "T_tracker_from_patientref": T_tracker_from_patientref.tolist(),
            "T_patientref_from_ct": T_patientref_from_ct.tolist(),
            "tip_in_tool": tip_in_tool.tolist(),
        }
    )
    np.testing.assert_allclose(
        pose.tip, T_ct_from_tool[:3, :3] @ tip_in_tool + T_ct_from_tool[:3, 3], atol=1e-9
    )
    np.testing.assert_allclose(pose.axis, T_ct_from_tool[:3, :3] @ axis_in_tool, atol=1e-12)
    assert pose.chain == "tracker via patient reference"


def test_tracker_chain_via_carm_reference():
    rng = np.random.default_rng(8)
    T_world_from_tool = random_rigid(rng)
    T_tracker_from_carmref = random_rigid(rng)
    T_carmref_from_world = random_rigid(rng)
    T_tracker_from_tool = T_tracker_from_carmref @ T_carmref_from_world @ T_world_from_tool
    pose = tool_pose_from_payload(
        {
            "frame": "tracker",
            "T_tracker_from_tool": T_tracker_from_tool.tolist(),
            "T_tracker_from_carmref": T_tracker_from_carmref.tolist(),
            "T_carmref_from_world": T_carmref_from_world.tolist(),
        }
    )
    np.testing.assert_allclose(pose.tip, T_world_from_tool[:3, 3], atol=1e-9)
    np.testing.assert_allclose(pose.axis, T_world_from_tool[:3, 2], atol=1e-12)


def test_ct_tip_axis_is_normalised_and_zero_axis_refused():
    pose = tool_pose_from_payload({"frame": "ct", "tip": [1, 2, 3], "axis": [0, 0, 5]})
    np.testing.assert_allclose(pose.axis, [0, 0, 1])
    with pytest.raises(TransformError, match="axis must not be the zero vector"):
        tool_pose_from_payload({"frame": "ct", "tip": [1, 2, 3], "axis": [0, 0, 0]})


@pytest.mark.parametrize(
    "payload, message",
    [
        ({"frame": "ct"}, "needs tip and axis"),
        (
            {"frame": "tracker", "T_tracker_from_tool": np.eye(4).tolist()},
            "needs T_tracker_from_patientref",
        ),
        ({"frame": "moon"}, "frame must be"),
        (
            {
                "frame": "tracker",
                "T_tracker_from_tool": np.eye(4).tolist(),
                "T_tracker_from_patientref": np.eye(4).tolist(),
            },
            "T_patientref_from_ct is required",
        ),
        ([1, 2, 3], "JSON object"),
    ],
)
def test_incomplete_payloads_refused(payload, message):
    with pytest.raises(TransformError, match=message):
        tool_pose_from_payload(payload)
