"""Camera model: projection round trips, pixel rays, resampling and JSON validation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from geometry.camera import Camera, backproject, pixel_rays, project
from geometry.carm import carm_pose


def _camera() -> Camera:
    return Camera.from_geometry(120, 90, 1020.0, 0.6, 0.55, cx=63.2, cy=41.7)


def test_intrinsics_follow_conventions():
    cam = Camera.from_geometry(200, 100, 1000.0, 0.5, 0.25)
    np.testing.assert_allclose(cam.K, [[2000, 0, 99.5], [0, 4000, 49.5], [0, 0, 1]])


def test_project_backproject_round_trip():
    rng = np.random.default_rng(1)
    cam = _camera()
    T = carm_pose(25.0, -12.0, 640.0, [10.0, -20.0, 5.0])
    pts = rng.uniform(-80, 80, size=(200, 3))
    uv = project(pts, cam.K, T)
    depth = (pts @ T[:3, :3].T + T[:3, 3])[:, 2]
    back = backproject(uv, depth, cam.K, T)
    np.testing.assert_allclose(back, pts, atol=1e-9)
    # torch path gives the same numbers
    uv_t = project(torch.as_tensor(pts), torch.as_tensor(cam.K), torch.as_tensor(T))
    np.testing.assert_allclose(uv_t.numpy(), uv, atol=1e-9)


def test_pixel_rays_hit_their_pixels():
    cam = _camera()
    T = carm_pose(-40.0, 20.0, 700.0, [0.0, 0.0, 0.0], in_plane_deg=15.0)
    src, dirs = pixel_rays(cam, T)
    assert dirs.shape == (cam.height, cam.width, 3)
    np.testing.assert_allclose(np.linalg.norm(dirs, axis=-1), 1.0, atol=1e-12)
    pts = src + 500.0 * dirs.reshape(-1, 3)
    uv = project(pts, cam.K, T)
    v, u = np.meshgrid(np.arange(cam.height), np.arange(cam.width), indexing="ij")
    np.testing.assert_allclose(uv, np.stack([u.ravel(), v.ravel()], 1), atol=1e-8)


def test_scaled_camera_keeps_rays_through_same_detector_points():
    cam = _camera()
    small = cam.scaled(60, 45)
    T = carm_pose(10.0, 5.0, 600.0, [0.0, 0.0, 0.0])
    pts = np.random.default_rng(2).uniform(-50, 50, size=(20, 3))
    uv = project(pts, cam.K, T)
    uv_small = project(pts, small.K, T)
    # pixel-centre convention: u' = (u + 0.5) * W'/W - 0.5
    np.testing.assert_allclose(uv_small, (uv + 0.5) * 0.5 - 0.5, atol=1e-9)
    assert small.pixel_spacing_mm == pytest.approx((1.2, 1.1))
    assert small.source_to_detector_mm == cam.source_to_detector_mm


def test_json_round_trip_and_errors():
    cam = _camera()
    again = Camera.from_json(cam.to_json())
    np.testing.assert_allclose(again.K, cam.K)
    assert (again.width, again.height) == (cam.width, cam.height)
    bad = cam.to_json()
    del bad["K"]
    with pytest.raises(ValueError, match="missing field"):
        Camera.from_json(bad)
    bad = cam.to_json()
    bad["K"] = [[1, 0], [0, 1]]
    with pytest.raises(ValueError, match="shape"):
        Camera.from_json(bad)
    bad = cam.to_json()
    bad["width"] = -3
    with pytest.raises(ValueError, match="width"):
        Camera.from_json(bad)
    bad = cam.to_json()
    bad["K"][0][0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        Camera.from_json(bad)


def test_from_profile_uses_source_distance():
    profile = {
        "K": [[2000.0, 0, 255.0], [0, 2000.0, 250.0], [0, 0, 1]],
        "width": 512,
        "height": 500,
        "pixel_spacing_mm": [0.5, 0.5],
        "source_mm": [1.0, -2.0, -1000.0],
    }
    cam = Camera.from_profile(profile)
    assert cam.source_to_detector_mm == pytest.approx(1000.0)
    assert cam.K[0, 2] == pytest.approx(255.0)
    with pytest.raises(ValueError, match="missing"):
        Camera.from_profile({"K": profile["K"]})
