"""Anatomical angles, image angles, deviations and tool-vs-plan figures."""

from __future__ import annotations

import numpy as np
import pytest

from planning.engine.trajectory import (
    anatomical_angles,
    deviation,
    image_angle_deg,
    tool_vs_plan,
)
from planning.engine.transforms import ToolPose


def test_anatomical_angles_of_axis_directions():
    # straight anterior (-y in LPS): anteversion 90
    a = anatomical_angles([0, 0, 0], [0, -10, 0])
    assert a["anteversion_deg"] == pytest.approx(90)
    assert a["axial_deg"] == pytest.approx(0)
    # toward the patient's left in the axial plane: inclination 90, no anteversion
    a = anatomical_angles([0, 0, 0], [10, 0, 0])
    assert a["inclination_deg"] == pytest.approx(90)
    assert a["anteversion_deg"] == pytest.approx(0)
    assert a["axial_deg"] == pytest.approx(90)
    # 45 deg cranial in the coronal plane
    a = anatomical_angles([0, 0, 0], [10, 0, 10])
    assert a["inclination_deg"] == pytest.approx(45)
    assert a["cranial_deg"] == pytest.approx(45)
    # a cup axis: lateral, inferior, anterior; compare with the textbook formulas
    d = np.array(
        [
            np.sin(np.radians(40)) * np.cos(np.radians(15)),
            -np.sin(np.radians(15)),
            -np.cos(np.radians(40)) * np.cos(np.radians(15)),
        ]
    )
    a = anatomical_angles([0, 0, 0], 50 * d)
    assert a["inclination_deg"] == pytest.approx(40, abs=1e-9)
    assert a["anteversion_deg"] == pytest.approx(15, abs=1e-9)


def test_anatomical_angles_refuse_zero_length():
    with pytest.raises(ValueError, match="coincide"):
        anatomical_angles([1, 2, 3], [1, 2, 3])


def test_image_angle_counter_clockwise_on_screen():
    assert image_angle_deg([0, 0], [10, 0]) == pytest.approx(0)
    assert image_angle_deg([0, 0], [0, -10]) == pytest.approx(90)  # up on screen
    assert image_angle_deg([0, 0], [-10, 10]) == pytest.approx(-135)


def test_deviation_known_offsets():
    pe, pt = np.array([0.0, 0, 0]), np.array([0.0, 0, 50])
    ae, at = (
        np.array([3.0, 4, 0]),
        pe + 50 * np.array([np.sin(np.radians(10)), 0, np.cos(np.radians(10))]),
    )
    d = deviation(pe, pt, ae, at + [3, 4, 0])
    assert d["entry_mm"] == pytest.approx(5.0)
    assert d["angle_deg"] == pytest.approx(10.0, abs=1e-9)
    expected_tip = np.linalg.norm(at + [3, 4, 0] - pt)
    assert d["tip_mm"] == pytest.approx(expected_tip)
    # identical trajectories: zero deviations
    z = deviation(pe, pt, pe, pt)
    assert z["entry_mm"] == 0 and z["tip_mm"] == 0 and z["angle_deg"] == pytest.approx(0, abs=1e-6)


def test_tool_vs_plan_distances_and_angle():
    entry, target = np.array([0.0, 0, 0]), np.array([0.0, 0, 100])
    tool = ToolPose(
        np.array([3.0, 4.0, 50.0]),
        np.array([0.0, np.sin(np.radians(20)), np.cos(np.radians(20))]),
        "test",
    )
    r = tool_vs_plan(tool, entry, target)
    assert r["tip_to_plan_mm"] == pytest.approx(5.0)
    assert r["tip_to_axis_mm"] == pytest.approx(5.0)
    assert r["axis_angle_deg"] == pytest.approx(20.0)
    assert r["tip_to_target_mm"] == pytest.approx(np.sqrt(9 + 16 + 2500))
    # beyond the target: distance to the segment is to its end
    tool2 = ToolPose(np.array([0.0, 0, 110]), np.array([0.0, 0, 1]), "test")
    assert tool_vs_plan(tool2, entry, target)["tip_to_plan_mm"] == pytest.approx(10.0)
    assert tool_vs_plan(tool2, entry, target)["tip_to_axis_mm"] == pytest.approx(0.0)
