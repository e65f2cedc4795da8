"""Finite-difference check of the DRR's gradient with respect to the pose (float64)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dicomio.volume import CTVolume
from geometry.camera import Camera
from geometry.carm import carm_pose
from geometry.rigid import se3_exp
from registration.engine.drr import DrrRenderer
from tests.engine.helpers import volume_center


@pytest.mark.parametrize("method", ["planes", "rays"])
def test_pose_gradient_matches_finite_differences(method):
    rng = np.random.default_rng(8)
    # smooth blob so the image is a smooth function of the pose
    k, j, i = np.mgrid[0:24, 0:24, 0:24].astype(np.float64)
    arr = -1000.0 + 2500.0 * np.exp(
        -(((i - 11) / 5) ** 2 + ((j - 13) / 4) ** 2 + ((k - 12) / 6) ** 2)
    )
    vol = CTVolume(arr, np.diag([1.2, 1.0, 1.1, 1.0]))
    cam = Camera.from_geometry(16, 16, 1000.0, 1.2, 1.2)
    r = DrrRenderer(vol, dtype=torch.float64, method=method)
    T0 = torch.as_tensor(carm_pose(20.0, 10.0, 600.0, volume_center(vol)))
    K = torch.as_tensor(cam.K)
    weights = torch.as_tensor(rng.normal(size=(1, 16, 16)))

    def loss(xi: torch.Tensor) -> torch.Tensor:
        T = se3_exp(xi) @ T0
        return (r.render(T, K, 16, 16, samples_per_ray=96) * weights).sum()

    xi = torch.zeros(6, dtype=torch.float64, requires_grad=True)
    value = loss(xi)
    (grad,) = torch.autograd.grad(value, xi)
    steps = [1e-7] * 3 + [1e-5] * 3  # radians, mm (small: bilinear kinks)
    fd = []
    for a in range(6):
        e = torch.zeros(6, dtype=torch.float64)
        e[a] = steps[a]
        fd.append(((loss(e) - loss(-e)) / (2 * steps[a])).item())
    fd = np.array(fd)
    assert np.abs(grad.numpy()).max() > 1e-3, "gradient must not vanish"
    np.testing.assert_allclose(grad.numpy(), fd, rtol=2e-3, atol=1e-6 * np.abs(fd).max())
