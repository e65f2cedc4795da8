"""POST /api/plans/<id>/tool-pose/: tracked tool poses, projections and refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest
from django.urls import reverse

from planning.engine.transforms import random_rigid, rotation_about
from tests.planning import helpers
from webapp.planning import services
from webapp.planning.models import ToolPoseSample

ENTRY = np.array([0.0, -30.0, 10.0])
TARGET = np.array([0.0, 20.0, 0.0])


@pytest.fixture
def planned(plan_a, surgeon_a):
    picks = helpers.picks_for(ENTRY, TARGET, helpers.pose(0), helpers.pose(90))
    services.save_version(
        plan_a,
        surgeon_a,
        [{"name": "S1", "colour": "#00b4ff", "diameter_mm": 5, "picks": picks}],
        "",
    )
    return plan_a


def post(client, plan, payload):
    body = payload if isinstance(payload, str) else json.dumps(payload)
    return client.post(
        reverse("planning-api:plan-tool-pose", args=[plan.pk]),
        body,
        content_type="application/json",
    )


def test_ct_tip_axis_projected_on_both_views(client, planned, surgeon_a):
    client.force_login(surgeon_a)
    tip = ENTRY + np.array([2.0, 0.0, 0.0])
    axis = (TARGET - ENTRY) / np.linalg.norm(TARGET - ENTRY)
    r = post(
        client,
        planned,
        {"frame": "ct", "tip": tip.tolist(), "axis": axis.tolist(), "extension_mm": 80},
    )
    assert r.status_code == 201, r.content
    tool = r.json()["tool"]
    for i, lao in enumerate((0, 90)):
        expected = helpers.project(helpers.pose(lao), np.stack([tip, tip + 80 * axis]))
        np.testing.assert_allclose(tool["views"][i]["tip"], expected[0], atol=1e-6)
        np.testing.assert_allclose(tool["views"][i]["extension"], expected[1], atol=1e-6)
        assert tool["views"][i]["visible"]
    vs = tool["vs_plan"][0]
    assert vs["name"] == "S1"
    assert vs["tip_to_plan_mm"] == pytest.approx(2.0, abs=1e-6)
    assert vs["axis_angle_deg"] == pytest.approx(0.0, abs=1e-4)
    # the page polls GET and sees the same pose
    r = client.get(reverse("planning-api:plan-tool-pose", args=[planned.pk]))
    assert r.json()["tool"]["tip"] == pytest.approx(tip.tolist())


def test_tracker_chain_pose(client, planned, surgeon_a):
    client.force_login(surgeon_a)
    rng = np.random.default_rng(11)
    T_ct_from_tool = np.eye(4)
    T_ct_from_tool[:3, :3] = rotation_about([1, 0, 0], np.radians(-90))  # tool +z -> +y
    T_ct_from_tool[:3, 3] = ENTRY
    T_tracker_from_patientref = random_rigid(rng)
    T_patientref_from_ct = random_rigid(rng)
    T_tracker_from_tool = T_tracker_from_patientref @ T_patientref_from_ct @ T_ct_from_tool
    r = post(
        client,
        planned,
        {
            "frame": "tracker",
            "T_tracker_from_tool": T_tracker_from_tool.tolist(),
            "T_tracker_from_patientref": T_tracker_from_patientref.tolist(),
            "T_patientref_from_ct": T_patientref_from_ct.tolist(),
        },
    )
    assert r.status_code == 201, r.content
    tool = r.json()["tool"]
    np.testing.assert_allclose(tool["tip"], ENTRY, atol=1e-6)
    np.testing.assert_allclose(tool["axis"], [0, 1, 0], atol=1e-9)
    expected_angle = np.degrees(
        np.arccos(np.dot([0, 1, 0], (TARGET - ENTRY) / np.linalg.norm(TARGET - ENTRY)))
    )
    assert tool["vs_plan"][0]["axis_angle_deg"] == pytest.approx(expected_angle, abs=1e-6)
    assert tool["vs_plan"][0]["tip_to_plan_mm"] == pytest.approx(0.0, abs=1e-6)


def _not_rigid():
    T = np.eye(4)
    T[0, 0] = 1.3
    return T.tolist()


@pytest.mark.parametrize(
    "payload, message",
    [
        (
            '{"frame": "tracker", "T_tracker_from_tool": [[1,0,0,NaN],[0,1,0,0],[0,0,1,0],[0,0,0,1]],'
            ' "T_tracker_from_patientref": [[1,0,0,0],[0,1,0,0],[0,0,1,0],[0,0,0,1]],'
            ' "T_patientref_from_ct": [[1,0,0,0],[0,1,0,0],[0,0,1,0],[0,0,0,1]]}',
            "T_tracker_from_tool contains NaN or infinite values",
        ),
        (
            {
                "frame": "tracker",
                "T_tracker_from_tool": np.eye(4).tolist(),
                "T_tracker_from_patientref": _not_rigid(),
                "T_patientref_from_ct": np.eye(4).tolist(),
            },
            "T_tracker_from_patientref is not rigid",
        ),
        (
            {
                "frame": "tracker",
                "T_tracker_from_tool": np.eye(4).tolist(),
                "T_tracker_from_patientref": np.eye(4).tolist(),
                "T_patientref_from_ct": np.diag([1.0, 1.0, -1.0, 1.0]).tolist(),
            },
            "T_patientref_from_ct is not rigid: rotation determinant is -1.000",
        ),
        (
            {"frame": "ct", "T_ct_from_tool": [[1, 0, 0], [0, 1, 0], [0, 0, 1]]},
            "T_ct_from_tool must be a 4x4 matrix",
        ),
        ({"frame": "ct", "tip": [0, 0, "x"], "axis": [0, 0, 1]}, "tip must be three numbers"),
        (
            '{"frame": "ct", "tip": [0, 0, Infinity], "axis": [0, 0, 1]}',
            "tip contains NaN or infinite values",
        ),
        ("{not json", "not valid JSON"),
        (
            {"frame": "ct", "tip": [0, 0, 0], "axis": [0, 0, 1], "extension_mm": -5},
            "extension_mm must be between",
        ),
    ],
)
def test_bad_poses_refused_with_clear_messages(client, planned, surgeon_a, payload, message):
    client.force_login(surgeon_a)
    r = post(client, planned, payload)
    assert r.status_code == 400
    assert message in r.json()["detail"]
    assert not ToolPoseSample.objects.filter(plan=planned).exists()


def test_history_is_bounded(client, planned, surgeon_a):
    client.force_login(surgeon_a)
    for i in range(services.TOOL_HISTORY + 5):
        assert (
            post(client, planned, {"frame": "ct", "tip": [i, 0, 0], "axis": [0, 0, 1]}).status_code
            == 201
        )
    assert ToolPoseSample.objects.filter(plan=planned).count() == services.TOOL_HISTORY
    latest = client.get(reverse("planning-api:plan-tool-pose", args=[planned.pk])).json()["tool"]
    assert latest["tip"][0] == services.TOOL_HISTORY + 4


def test_no_pose_yet(client, planned, surgeon_a):
    client.force_login(surgeon_a)
    assert client.get(reverse("planning-api:plan-tool-pose", args=[planned.pk])).json() == {
        "tool": None
    }
