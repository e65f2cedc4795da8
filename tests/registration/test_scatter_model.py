"""The scatter forward model: what it adds, and that a fit per image finds scatter where
there is some and the depth where the scattered DRR matches."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from registration.engine.scatter_model import (
    ScatteredRenderer,
    ScatterModel,
    fit_scatter,
)
from tests.registration.synthetic_view import synthetic_view


@pytest.fixture(scope="module")
def scene():
    return synthetic_view()


def test_no_scatter_is_the_drr_itself():
    drr = torch.rand(2, 16, 16) * 3
    assert torch.equal(ScatterModel(0.0, 0.2, 1.4).apply(drr), drr)


@pytest.mark.parametrize("fraction", [0.1, 0.3])
def test_a_flat_field_gets_the_stated_scatter_share(fraction):
    """On a uniform image the glow equals k x primary: the primary's share of the detected
    signal is 1 - fraction."""
    drr = torch.full((32, 32), 2.0)
    out = ScatterModel(fraction, 0.2, 1.0).apply(drr)
    share = torch.exp(-drr) / torch.exp(-out)
    np.testing.assert_allclose(share.numpy(), 1.0 - fraction, rtol=1e-5)


def test_scatter_lowers_contrast_most_where_the_patient_is_thick():
    """A step from thin (1) to thick (4): the scattered step is smaller than the DRR's."""
    drr = torch.ones(64, 64)
    drr[:, 32:] = 4.0
    out = ScatterModel(0.3, 0.2, 1.0).apply(drr)
    assert float(out[32, 48] - out[32, 16]) < 3.0 * 0.9


def test_bone_only_renders_pass_through(scene):
    cam, renderer, T, _img = scene
    wrapped = ScatteredRenderer(renderer, ScatterModel(0.3, 0.1, 1.0))
    args = (torch.as_tensor(T[None], dtype=torch.float32),
            torch.as_tensor(cam.K, dtype=torch.float32), 40, 40)
    with torch.no_grad():
        a = wrapped.render(*args, samples_per_ray=32, bone_only=True)
        b = renderer.render(*args, samples_per_ray=32, bone_only=True)
        c = wrapped.render(*args, samples_per_ray=32)
        d = renderer.render(*args, samples_per_ray=32)
    assert torch.equal(a, b) and not torch.allclose(c, d)
    assert np.array_equal(wrapped.bone_points(), renderer.bone_points())  # delegated


def test_the_fit_finds_the_scatter_and_the_depth(scene):
    cam, renderer, T_true, img = scene
    truth = ScatterModel(0.3, 0.2, 1.0)
    scattered = truth.apply(img)
    fit = fit_scatter(renderer, scattered, cam.K, T_true, np.zeros(3),
                      offsets_mm=(-20.0, -10.0, 0.0, 10.0, 20.0))
    assert fit.offset_mm == 0.0
    assert fit.model.fraction >= 0.2
    assert fit.similarity > fit.similarity_without + 0.005


def test_a_clean_image_gains_little_from_a_model(scene):
    cam, renderer, T_true, img = scene
    fit = fit_scatter(renderer, img, cam.K, T_true, np.zeros(3),
                      offsets_mm=(-10.0, 0.0, 10.0))
    assert fit.offset_mm == 0.0
    assert fit.similarity - fit.similarity_without < 0.002
