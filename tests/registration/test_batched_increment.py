"""refine.increment on a batch equals the increments one pose at a time."""

from __future__ import annotations

import math

import numpy as np
import torch

from geometry.rigid import se3_exp
from registration.engine.refine import increment


def _one(theta: torch.Tensor, pivot: torch.Tensor) -> torch.Tensor:
    """The definition: x' = R(omega) (x - p) + p + v, built from 3x3 and 3-vectors."""
    R = se3_exp(torch.cat([theta[:3] * math.pi / 180.0, torch.zeros(3, dtype=theta.dtype)]))[:3, :3]
    D = torch.eye(4, dtype=theta.dtype)
    D[:3, :3] = R
    D[:3, 3] = pivot - R @ pivot + theta[3:]
    return D


def test_batched_increment_equals_one_at_a_time():
    rng = np.random.default_rng(2)
    thetas = torch.as_tensor(rng.normal(0, [5, 5, 5, 10, 10, 10], (7, 6)))
    thetas[0] = 0.0  # the identity is in every batch the refinement makes
    pivots = torch.as_tensor(rng.normal(0, 50, (7, 3))) + torch.tensor([0.0, 0.0, 700.0])
    batch = increment(thetas, pivots)
    shared = increment(thetas, pivots[0])
    for b in range(7):
        torch.testing.assert_close(batch[b], _one(thetas[b], pivots[b]), atol=1e-12, rtol=0)
        torch.testing.assert_close(shared[b], _one(thetas[b], pivots[0]), atol=1e-12, rtol=0)
    torch.testing.assert_close(batch[0], torch.eye(4, dtype=torch.float64))


def test_pivot_stays_put_under_a_pure_rotation():
    theta = torch.tensor([[3.0, -7.0, 11.0, 0.0, 0.0, 0.0]], dtype=torch.float64)
    p = torch.tensor([10.0, -20.0, 650.0], dtype=torch.float64)
    D = increment(theta, p)[0]
    torch.testing.assert_close(D[:3, :3] @ p + D[:3, 3], p, atol=1e-9, rtol=0)


def test_batched_increment_is_differentiable():
    thetas = torch.zeros(3, 6, dtype=torch.float64, requires_grad=True)
    p = torch.tensor([0.0, 0.0, 700.0], dtype=torch.float64)
    x = torch.tensor([5.0, -3.0, 690.0, 1.0], dtype=torch.float64)
    (increment(thetas, p) @ x)[:, 0].sum().backward()
    # d x'/d v_x = 1 and d x'/d omega_y (deg) = (x_z - p_z) pi / 180
    torch.testing.assert_close(thetas.grad[:, 3], torch.ones(3, dtype=torch.float64))
    torch.testing.assert_close(thetas.grad[:, 1], torch.full((3,), -10.0 * math.pi / 180,
                                                             dtype=torch.float64))
