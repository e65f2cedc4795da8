"""X-ray input handling: collimator borders and resampling with scaled intrinsics."""

from __future__ import annotations

import numpy as np

from geometry.camera import Camera, project
from geometry.carm import carm_pose
from registration.engine.xray_input import line_integral_from_pixels, to_square


def test_collimator_borders_are_masked():
    rng = np.random.default_rng(0)
    img = rng.uniform(1000, 2000, (60, 80)).astype(np.float32)
    img[:8] = 0.0  # top shutter
    img[:, 70:] = 0.0  # right shutter
    li, valid = line_integral_from_pixels(img, "MONOCHROME2")
    assert not valid[:8].any()
    assert not valid[:, 70:].any()
    assert valid[12:-2, 2:66].all()
    assert (li[~valid] == 0).all()
    # bone-dark display: darker pixels give larger line integrals
    r, c = np.unravel_index(np.argmin(np.where(valid, img, np.inf)), img.shape)
    assert li[r, c] == li[valid].max()


def test_to_square_keeps_projection_geometry():
    cam = Camera.from_geometry(120, 80, 1000.0, 1.0, 1.0, cx=63.0, cy=37.5)
    T = carm_pose(10.0, 5.0, 650.0, [0, 0, 0])
    X = np.random.default_rng(1).uniform(-40, 40, (50, 3))
    uv = project(X, cam.K, T)
    net = to_square(np.ones((80, 120), np.float32), np.ones((80, 120), bool), cam.K, 64)
    uv2 = project(X, net.K, T)
    # pad 20 rows on top, then scale 120 -> 64 with pixel centres at integers
    s = 64 / 120
    expected = np.stack([(uv[:, 0] + 0.5) * s - 0.5, (uv[:, 1] + 20 + 0.5) * s - 0.5], 1)
    assert np.abs(uv2 - expected).max() < 1e-9
    assert net.valid.shape == (64, 64)
    assert not net.valid[:5].any() and not net.valid[-5:].any()
    assert net.valid[20:40].all()
