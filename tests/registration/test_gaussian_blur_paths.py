"""The Gaussian blur's matrix-product path equals the zero-padded separable convolution."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from registration.engine.similarity import gaussian_blur

ATOL = 2e-6  # float32, values in [0, 1]


def _conv_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    r = max(1, int(math.ceil(3.0 * sigma)))
    t = torch.arange(-r, r + 1, dtype=torch.float32)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    y = F.conv2d(x.unsqueeze(1), k.view(1, 1, 1, -1), padding=(0, r))
    return F.conv2d(y, k.view(1, 1, -1, 1), padding=(r, 0))[:, 0]


@pytest.mark.parametrize("shape, sigma", [((3, 48, 48), 4.8), ((2, 17, 40), 2.0),
                                          ((1, 128, 128), 4.0), ((2, 130, 70), 3.0),
                                          ((4, 5, 9), 5.9)])
def test_blur_equals_the_separable_convolution(shape, sigma):
    g = torch.Generator().manual_seed(4)
    x = torch.rand(*shape, generator=g)
    torch.testing.assert_close(gaussian_blur(x, sigma), _conv_blur(x, sigma), atol=ATOL, rtol=0)
    torch.testing.assert_close(gaussian_blur(x[0], sigma), _conv_blur(x[:1], sigma)[0],
                               atol=ATOL, rtol=0)


def test_blur_gradient_equals_the_convolution_gradient():
    g = torch.Generator().manual_seed(5)
    x = torch.rand(2, 33, 47, generator=g)
    w = torch.rand(2, 33, 47, generator=g)
    a = x.clone().requires_grad_(True)
    b = x.clone().requires_grad_(True)
    (gaussian_blur(a, 3.3) * w).sum().backward()
    (_conv_blur(b, 3.3) * w).sum().backward()
    torch.testing.assert_close(a.grad, b.grad, atol=ATOL, rtol=0)
