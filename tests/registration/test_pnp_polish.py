"""Weighted robust LM of a PnP pose on many correspondences (pnp.refine_pose_weighted)."""

from __future__ import annotations

import numpy as np
import pytest

from geometry.camera import Camera, project
from geometry.carm import carm_pose
from geometry.rigid import perturb_pose, target_error_mm
from registration.engine.pnp import refine_pose_weighted, solve_pnp_ransac

CENTRE = np.array([5.0, -20.0, 30.0])


def _scene(rng, n=2000, size=64):
    """A 64 px C-arm view (the quick network's grid) of ``n`` points around CENTRE."""
    cam = Camera.from_geometry(size, size, 1000.0, 4.8 * 64 / size, 4.8 * 64 / size)
    T = carm_pose(20.0, -10.0, 650.0, CENTRE, in_plane_deg=4.0)
    X = rng.uniform(-60, 60, size=(n, 3)) + CENTRE
    return cam, T, X, project(X, cam.K, T)


def test_exact_correspondences_converge_from_a_perturbed_start():
    rng = np.random.default_rng(10)
    cam, T, X, uv = _scene(rng)
    T0 = perturb_pose(T, 1.0, 2.0, rng, center_world=CENTRE)
    T1, n_used = refine_pose_weighted(uv, X, cam.K, T0, np.ones(len(X)), gate_px=50.0)
    assert n_used == len(X)
    assert target_error_mm(X, T1, T).max() < 1e-6


def test_weights_by_predicted_sigma_beat_the_ransac_subset():
    """Heteroscedastic 3-D noise (sigma 1-10 mm per point): the inverse-variance weighted
    fit on all points lands nearer the truth than PnP on the first 300 points, and nearer
    than the same fit with equal weights."""
    rng = np.random.default_rng(11)
    cam, T, X, uv = _scene(rng)
    sigma = rng.uniform(1.0, 10.0, len(X))
    Xn = X + rng.normal(0.0, 1.0, X.shape) * sigma[:, None]
    start = solve_pnp_ransac(uv[:300], Xn[:300], cam.K, reprojection_px=3.0)
    assert start.ok
    e_start = target_error_mm(X, start.T_cam_from_world, T).mean()
    Tw, _ = refine_pose_weighted(uv, Xn, cam.K, start.T_cam_from_world, 1.0 / sigma**2)
    Tu, _ = refine_pose_weighted(uv, Xn, cam.K, start.T_cam_from_world, np.ones(len(X)))
    e_w = target_error_mm(X, Tw, T).mean()
    e_u = target_error_mm(X, Tu, T).mean()
    assert e_w < 0.75 * e_start  # measured 2.98 against 4.81 mm
    assert e_w < e_u


def test_gross_outliers_outside_the_gate_are_left_out():
    rng = np.random.default_rng(12)
    cam, T, X, uv = _scene(rng)
    bad = rng.random(len(X)) < 0.3
    uv_bad = uv.copy()
    uv_bad[bad] += rng.uniform(8.0, 20.0, (bad.sum(), 2)) * rng.choice([-1, 1], (bad.sum(), 2))
    T0 = perturb_pose(T, 0.2, 0.5, rng, center_world=CENTRE)
    T1, n_used = refine_pose_weighted(uv_bad, X, cam.K, T0, np.ones(len(X)), gate_px=3.0)
    assert n_used <= (~bad).sum()
    assert target_error_mm(X, T1, T).max() < 1e-3


def test_too_few_points_in_the_gate_keep_the_start_pose():
    rng = np.random.default_rng(13)
    cam, T, X, uv = _scene(rng, n=5)
    T1, n_used = refine_pose_weighted(uv, X, cam.K, T, np.ones(5))
    assert n_used == 5
    np.testing.assert_array_equal(T1, T)


def test_mismatched_lengths_are_refused():
    rng = np.random.default_rng(14)
    cam, T, X, uv = _scene(rng, n=20)
    with pytest.raises(ValueError, match="weights"):
        refine_pose_weighted(uv, X, cam.K, T, np.ones(19))
