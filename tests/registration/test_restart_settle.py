"""The restart self-check hands only restarts that land far away to ``settle`` (the
registration's depth stages), and measures them where ``settle`` leaves them."""

from __future__ import annotations

import numpy as np
import pytest

from geometry.rigid import pose_distance_mm
from registration.engine.refine import RefineLevel
from registration.engine.restart_check import restart_check
from tests.registration.synthetic_view import synthetic_view

LEVELS = (RefineLevel(4, 30, 1.5, 48), RefineLevel(2, 20, 0.5, 64))


@pytest.fixture(scope="module")
def shifted_pose():
    """An X-ray at a true pose and a pose 25 mm off it in depth, from which restarts
    land more than 5 mm away (test_engine_refine)."""
    cam, renderer, T_true, img = synthetic_view(samples_per_ray=96)
    T_bad = T_true.copy()
    T_bad[2, 3] += 25.0
    return renderer, img, cam, T_bad


def _check(renderer, img, cam, T, **kw):
    return restart_check(renderer, img, cam.K, T, pivot_world=np.zeros(3), n_restarts=2,
                         rot_deg=3.0, depth_mm=10.0, levels=LEVELS, seed=0, **kw)


def test_far_restarts_are_settled_and_measured_where_they_settle(shifted_pose):
    renderer, img, cam, T_bad = shifted_pose
    seen: list[float] = []

    def settle(T: np.ndarray) -> np.ndarray:
        seen.append(pose_distance_mm(T, T_bad, np.zeros(3)))
        return T_bad.copy()  # a settling that brings the restart back to the pose checked

    rc = _check(renderer, img, cam, T_bad, settle=settle, settle_beyond_mm=5.0)
    assert seen, "no restart was handed to settle although they land > 5 mm away"
    assert min(seen) > 5.0, seen
    settled = [d for d in rc.spread_mm if d < 1e-6]
    assert len(settled) == len(seen), (rc.spread_mm, seen)
    for d, s in zip(rc.spread_mm, rc.similarities, strict=True):
        if d < 1e-6:
            assert s == pytest.approx(rc.reference_similarity, abs=1e-6)


def test_restarts_that_come_back_are_not_settled(shifted_pose):
    renderer, img, cam, T_bad = shifted_pose
    calls: list[int] = []

    def settle(T: np.ndarray) -> np.ndarray:
        calls.append(1)
        return T

    rc = _check(renderer, img, cam, T_bad, settle=settle, settle_beyond_mm=1e6)
    assert calls == []
    assert max(rc.spread_mm) > 5.0, rc.spread_mm
