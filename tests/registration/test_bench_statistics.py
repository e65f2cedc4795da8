"""The benchmark's statistics: mTRE summary, self-check confusion, pose-error parts."""

from __future__ import annotations

import math

import numpy as np
import pytest

from geometry.carm import carm_pose
from registration.bench.pose_errors import confusion, error_parts, parts_median
from simulation.heldout import summarise

CENTRE = np.array([10.0, -20.0, 30.0])


def _moved_in_camera(T: np.ndarray, d_cam: np.ndarray) -> np.ndarray:
    """``T`` with the world shifted by ``d_cam`` (mm) in the camera frame."""
    D = np.eye(4)
    D[:3, 3] = d_cam
    return D @ T


def test_summary_counts_failures_as_infinite_and_uses_the_best_half() -> None:
    s = summarise([0.5, 1.5, 3.0, 12.0, math.inf, math.inf])
    assert s["n"] == 6
    assert s["n_self_check_failed"] == 2
    assert s["median_mm"] == pytest.approx(7.5, abs=1e-12)
    assert s["mean_mm_of_registered"] == pytest.approx(17.0 / 4, abs=1e-12)
    assert s["best_half_mean_mm"] == pytest.approx(5.0 / 3, abs=1e-12)
    assert s["share_under_mm"]["2"] == pytest.approx(2 / 6, abs=1e-12)
    assert s["failure_rate_over_10mm"] == pytest.approx(3 / 6, abs=1e-12)


def test_summary_p95_is_a_real_error_or_none_never_a_blend_with_a_failure() -> None:
    errors = [float(x) for x in range(1, 20)] + [math.inf]  # 20 results, one failed
    assert summarise(errors)["p95_mm"] is None  # the 95th percentile lies on the failure
    assert summarise(errors[:-1] + [25.0])["p95_mm"] == pytest.approx(25.0, abs=1e-12)
    s = summarise([float(x) for x in range(1, 40)] + [math.inf])
    assert s["p95_mm"] == pytest.approx(39.0, abs=1e-12)


def test_summary_median_is_none_when_most_failed() -> None:
    s = summarise([1.0, math.inf, math.inf])
    assert s["median_mm"] is None
    assert s["best_half_mean_mm"] == pytest.approx(1.0, abs=1e-12)


def test_confusion_sorts_results_by_outcome_and_true_error() -> None:
    rows = [
        {"status": "ok", "mtre_mm": 2.0},
        {"status": "ok", "mtre_mm": 25.0},
        {"status": "failed", "mtre_of_rejected_mm": 3.0},
        {"status": "failed", "mtre_of_rejected_mm": 40.0},
        {"status": "failed", "mtre_of_rejected_mm": None},
    ]
    assert confusion(rows) == {"ok_under": 1, "ok_over": 1, "failed_under": 1,
                                "failed_over": 1, "failed_no_pose": 1}


def test_error_parts_separate_depth_sideways_and_rotation() -> None:
    T_true = carm_pose(20.0, -10.0, 650.0, CENTRE)
    ray = T_true[:3, :3] @ CENTRE + T_true[:3, 3]
    ray /= np.linalg.norm(ray)
    side = np.cross(ray, [0.0, 1.0, 0.0])
    side /= np.linalg.norm(side)
    T = _moved_in_camera(T_true, 7.0 * ray + 3.0 * side)
    parts = error_parts(T, T_true, CENTRE)
    assert parts["depth_mm"] == pytest.approx(7.0, abs=1e-3)
    assert parts["sideways_mm"] == pytest.approx(3.0, abs=1e-3)
    assert parts["rotation_deg"] == pytest.approx(0.0, abs=1e-3)
    toward_source = error_parts(_moved_in_camera(T_true, -4.0 * ray), T_true, CENTRE)
    assert toward_source["depth_mm"] == pytest.approx(-4.0, abs=1e-3)


def test_error_parts_of_a_rotation_about_the_centre() -> None:
    T_true = carm_pose(0.0, 0.0, 650.0, CENTRE)
    T_rot = carm_pose(5.0, 0.0, 650.0, CENTRE)  # same centre, turned 5 deg
    parts = error_parts(T_rot, T_true, CENTRE)
    assert parts["rotation_deg"] == pytest.approx(5.0, abs=1e-6)
    assert abs(parts["depth_mm"]) < 1e-6 and parts["sideways_mm"] < 1e-6
    assert error_parts(None, T_true, CENTRE) is None


def test_parts_median_takes_absolute_values_over_images_with_a_pose() -> None:
    rows = [
        {"pnp_error_parts": {"depth_mm": -4.0, "sideways_mm": 1.0, "rotation_deg": 0.5},
         "error_parts": None},
        {"pnp_error_parts": {"depth_mm": 2.0, "sideways_mm": 3.0, "rotation_deg": 1.5},
         "error_parts": {"depth_mm": -1.0, "sideways_mm": 0.2, "rotation_deg": 0.1}},
    ]
    m = parts_median(rows)
    assert m["pnp_error_parts"] == {"depth_mm": 3.0, "sideways_mm": 2.0, "rotation_deg": 1.0}
    assert m["error_parts"] == {"depth_mm": 1.0, "sideways_mm": 0.2, "rotation_deg": 0.1}
    assert parts_median([{"pnp_error_parts": None}]) == {}
