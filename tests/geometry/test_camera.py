"""The one camera: building K from geometry and from a calibrated source, rescaling and
cropping keep every world point on the same detector point; projection agrees in NumPy
and torch."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from geometry.camera import Camera, backproject, downsampled_K, project, source_position
from geometry.carm import carm_pose
from tests.geometry.tolerances import tol


def _points(n: int = 50, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-60.0, 60.0, (n, 3))


def test_from_source_puts_the_principal_point_under_the_source():
    cam = Camera.from_source([3.0, -1.5, -1000.0], 201, 101, (0.5, 0.25))
    np.testing.assert_allclose(cam.K[0, 2], 100.0 + 3.0 / 0.5, **tol())
    np.testing.assert_allclose(cam.K[1, 2], 50.0 - 1.5 / 0.25, **tol())
    np.testing.assert_allclose([cam.K[0, 0], cam.K[1, 1]], [2000.0, 4000.0], **tol())
    assert cam.source_to_detector_mm == 1000.0
    with pytest.raises(ValueError, match="before the detector"):
        Camera.from_source([0.0, 0.0, 10.0], 10, 10, (1.0, 1.0))


def test_scaled_and_cropped_views_see_points_where_the_full_image_does():
    cam = Camera.from_geometry(320, 240, 1000.0, 0.6, 0.6, cx=170.0, cy=110.0)
    T = carm_pose(20.0, -10.0, 700.0, [0.0, 0.0, 0.0])
    uv = project(_points(), cam.K, T)
    half = cam.scaled(160, 120)
    np.testing.assert_allclose(project(_points(), half.K, T), (uv + 0.5) / 2.0 - 0.5, **tol())
    crop = cam.cropped(40, 30, 160, 120)
    np.testing.assert_allclose(project(_points(), crop.K, T), uv - [40.0, 30.0], **tol())
    with pytest.raises(ValueError, match="outside"):
        cam.cropped(200, 0, 160, 120)


def test_downsampled_K_is_the_scaled_camera_and_keeps_pixel_centres():
    cam = Camera.from_geometry(320, 240, 1000.0, 0.6, 0.6, cx=170.0, cy=110.0)
    T = carm_pose(-30.0, 5.0, 700.0, [0.0, 0.0, 0.0])
    uv = project(_points(), cam.K, T)
    for factor in (2.0, 4.0, 2.5):
        K = downsampled_K(cam.K, factor)
        np.testing.assert_allclose(project(_points(), K, T), (uv + 0.5) / factor - 0.5, **tol())
    np.testing.assert_allclose(downsampled_K(cam.K, 2.0), cam.scaled(160, 120).K, **tol())
    with pytest.raises(ValueError, match="downsampling factor"):
        downsampled_K(cam.K, 0.0)


def test_projection_and_backprojection_are_inverse_in_numpy_and_torch():
    cam = Camera.from_geometry(256, 256, 1100.0, 0.5, 0.5)
    T = carm_pose(-85.0, 15.0, 750.0, [5.0, -3.0, 20.0])
    X = _points()
    uv = project(X, cam.K, T)
    depth = (X @ T[2, :3]) + T[2, 3]
    np.testing.assert_allclose(backproject(uv, depth, cam.K, T), X, **tol())
    for dtype in (torch.float64, torch.float32):
        uv_t = project(torch.as_tensor(X, dtype=dtype), cam.K, torch.as_tensor(T, dtype=dtype))
        np.testing.assert_allclose(uv_t.numpy(), uv, atol=tol(dtype)["atol"] * 1e3, rtol=tol(dtype)["rtol"] * 10)
    src = source_position(T)
    np.testing.assert_allclose(T[:3, :3] @ src + T[:3, 3], np.zeros(3), atol=1e-9)
