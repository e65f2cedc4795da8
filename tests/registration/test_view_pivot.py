"""The view pivot: the point at the bone's depth on the ray through the view's centre."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from geometry.camera import project
from geometry.carm import carm_pose
from registration.engine.refine import view_pivot

K = np.array([[1000.0, 0.0, 63.5], [0.0, 1000.0, 63.5], [0.0, 0.0, 1.0]])


def _pose_looking_at(target: np.ndarray) -> np.ndarray:
    """A C-arm pose whose optical axis passes through ``target`` (LPS mm)."""
    T = carm_pose(20.0, -10.0, 700.0, target)
    c = T[:3, :3] @ target + T[:3, 3]
    assert c[0] == pytest.approx(0.0, abs=1e-6) and c[1] == pytest.approx(0.0, abs=1e-6)
    return T


def _depth(T: np.ndarray, x: np.ndarray) -> float:
    return float((T[:3, :3] @ x + T[:3, 3])[2])


def test_a_full_view_keeps_a_centred_pivot():
    centre = np.array([10.0, -20.0, 30.0])
    T = _pose_looking_at(centre)
    p = view_pivot(T, K, torch.ones(128, 128, dtype=torch.bool), centre)
    np.testing.assert_allclose(p, centre, atol=1e-6)


def test_a_close_up_moves_the_pivot_to_what_it_shows():
    centre = np.array([10.0, -20.0, 30.0])
    T = _pose_looking_at(centre)
    valid = torch.zeros(128, 128, dtype=torch.bool)
    valid[:, 96:] = True  # only the right quarter shows anatomy
    p = view_pivot(T, K, valid, centre)
    uv = project(p[None], K, T)[0]
    np.testing.assert_allclose(uv, [111.5, 63.5], atol=1e-6)  # centroid of columns 96..127
    assert _depth(T, p) == pytest.approx(_depth(T, centre), abs=1e-6)


def test_the_weight_pulls_the_pivot_towards_bone():
    centre = np.zeros(3)
    T = _pose_looking_at(centre)
    valid = torch.ones(128, 128, dtype=torch.bool)
    weight = torch.full((128, 128), 0.1)
    weight[:64] = 1.0  # bone in the upper half
    uv = project(view_pivot(T, K, valid, centre, weight)[None], K, T)[0]
    # rows 0..63 weigh 1.0 (centroid 31.5), rows 64..127 weigh 0.1 (centroid 95.5)
    assert uv[1] == pytest.approx((31.5 * 1.0 + 95.5 * 0.1) / 1.1, abs=1e-6)
    assert uv[0] == pytest.approx(63.5, abs=1e-6)


def test_no_valid_pixel_keeps_the_given_pivot():
    centre = np.array([1.0, 2.0, 3.0])
    T = _pose_looking_at(centre)
    p = view_pivot(T, K, torch.zeros(128, 128, dtype=torch.bool), centre)
    np.testing.assert_array_equal(p, centre)
