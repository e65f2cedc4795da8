"""The training loss: its point-error norm matches the Euclidean norm and has finite,
correct gradients (float64 gradient check), also where a prediction is exact."""

from __future__ import annotations

import math

import torch

from registration.engine.training_loss import _channel_norm, scene_coord_loss
from registration.engine.unet import SceneCoordOutput


def test_channel_norm_is_the_euclidean_norm_over_channels():
    g = torch.Generator().manual_seed(3)
    d = torch.randn(2, 3, 5, 7, generator=g, dtype=torch.float64)
    expected = torch.linalg.norm(d, dim=1)
    assert torch.allclose(_channel_norm(d), expected, rtol=0, atol=1e-9)


def test_channel_norm_gradient_float64():
    g = torch.Generator().manual_seed(4)
    d = torch.randn(1, 3, 3, 4, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(_channel_norm, (d,), eps=1e-6, atol=1e-6)


def test_loss_gradient_is_finite_where_the_prediction_is_exact():
    g = torch.Generator().manual_seed(5)
    target = torch.randn(1, 6, 4, 4, generator=g)
    coords = target.clone().requires_grad_(True)
    out = SceneCoordOutput(coords, torch.zeros(1, 2, 4, 4), torch.zeros(1, 1, 4, 4))
    mask = torch.ones(1, 4, 4, dtype=torch.bool)
    parts = scene_coord_loss(out, target, mask, mask)
    parts.total.backward()
    assert torch.isfinite(coords.grad).all()
    assert float(coords.grad.abs().max()) < 1e-3
    # zero error, log b = 0: NLL 0, L1 0, no off-bone pixels, BCE of logit 0 on bone = log 2
    assert math.isclose(float(parts.total.detach()), math.log(2.0), abs_tol=1e-5)
