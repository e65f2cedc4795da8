"""PnP-RANSAC + LM recovers a known pose from correspondences."""

from __future__ import annotations

import numpy as np

from geometry.camera import Camera, project
from geometry.carm import carm_pose
from geometry.rigid import target_error_mm
from registration.engine.pnp import solve_pnp_ransac


def _scene(rng, n=300):
    cam = Camera.from_geometry(128, 128, 1000.0, 2.4, 2.4)
    T = carm_pose(20.0, -10.0, 650.0, [5.0, -20.0, 30.0], in_plane_deg=4.0)
    X = rng.uniform(-60, 60, size=(n, 3)) + np.array([5.0, -20.0, 30.0])
    uv = project(X, cam.K, T)
    return cam, T, X, uv


def test_exact_correspondences_recover_pose_to_micrometres():
    rng = np.random.default_rng(1)
    cam, T, X, uv = _scene(rng)
    res = solve_pnp_ransac(uv, X, cam.K, reprojection_px=1.0)
    assert res.ok
    assert res.n_inliers == len(X)
    err = target_error_mm(X, res.T_cam_from_world, T)
    assert err.max() < 1e-3


def test_outliers_are_rejected():
    rng = np.random.default_rng(2)
    cam, T, X, uv = _scene(rng, 400)
    uv_noisy = uv + rng.normal(0, 0.3, uv.shape)
    bad = rng.random(len(X)) < 0.4
    uv_noisy[bad] = rng.uniform(0, 128, (bad.sum(), 2))
    res = solve_pnp_ransac(uv_noisy, X, cam.K, reprojection_px=2.0)
    assert res.ok
    # nearly all good points kept, nearly all bad ones rejected
    assert res.inliers[~bad].mean() > 0.95
    assert res.inliers[bad].mean() < 0.1
    assert target_error_mm(X, res.T_cam_from_world, T).mean() < 2.0


def test_too_few_points_fail_cleanly():
    rng = np.random.default_rng(3)
    cam, T, X, uv = _scene(rng, 4)
    res = solve_pnp_ransac(uv, X, cam.K)
    assert not res.ok
    assert "too few" in res.message
