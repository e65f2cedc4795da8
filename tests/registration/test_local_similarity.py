"""The local similarity self-check: window-by-window agreement of the CT's structure with the
X-ray, insensitive to contrast that varies across the image, sensitive to displaced edges."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from registration.engine.pipeline import RegistrationOptions, register
from registration.engine.quality import QualityError, QualityThresholds, check_local_similarity
from registration.engine.refine_similarity import local_similarity
from registration.engine.similarity import gaussian_blur, local_structure_ncc, ncc
from simulation.phantom_ct import synthetic_bone_ct
from tests.registration.synthetic_view import synthetic_view


def _blobs(seed: int, size: int = 96) -> torch.Tensor:
    """A smooth random image with edges on the scale of a few pixels."""
    g = torch.Generator().manual_seed(seed)
    return gaussian_blur((torch.rand(size, size, generator=g) > 0.8).float(), 2.0)


def test_identical_images_score_one():
    x = _blobs(0)
    w = torch.ones_like(x)
    assert float(local_structure_ncc(x, x, w, window_sigma_px=3.0)[0]) == pytest.approx(1.0, abs=1e-4)


def test_contrast_varying_across_the_image_keeps_the_local_score():
    drr = _blobs(1)
    w = torch.ones_like(drr)
    # bone contrast compressed 5x from the left to the right edge, plus a smooth offset
    ramp = torch.linspace(1.0, 0.2, drr.shape[1])[None, :]
    xray = drr * ramp + 0.3 * torch.linspace(0, 1, drr.shape[0])[:, None]
    local = float(local_structure_ncc(xray, drr, w, window_sigma_px=3.0, highpass_sigma_px=9.6)[0])
    glob = float(ncc(xray, drr, w)[0])
    assert local > 0.97
    assert glob < local - 0.1, (glob, local)


def test_displaced_edges_score_low():
    drr = _blobs(2)
    w = torch.ones_like(drr)
    shifted = torch.roll(drr, shifts=(3, 3), dims=(0, 1))  # edges 4 px off
    assert float(local_structure_ncc(shifted, drr, w, window_sigma_px=3.0)[0]) < 0.3


def test_weight_limits_the_windows_that_count():
    drr = _blobs(3)
    xray = drr.clone()
    xray[:, 48:] = _blobs(4)[:, 48:]  # the right half shows something else
    left = torch.zeros_like(drr)
    left[:, :40] = 1.0
    assert float(local_structure_ncc(xray, drr, left, window_sigma_px=3.0)[0]) > 0.99
    assert float(local_structure_ncc(xray, drr, torch.ones_like(drr), window_sigma_px=3.0)[0]) < 0.8


def test_local_similarity_of_a_rendered_view_separates_true_and_wrong_poses():
    cam, renderer, T_true, img = synthetic_view()
    at_truth = local_similarity(renderer, img, cam.K, T_true)
    T_off = T_true.copy()
    T_off[0, 3] += 12.0  # the CT 12 mm sideways (about 5 px at the detector)
    off = local_similarity(renderer, img, cam.K, T_off)
    assert at_truth > 0.98
    assert off < QualityThresholds().min_local_similarity
    # the collimated part does not count
    valid = torch.zeros_like(img, dtype=torch.bool)
    valid[10:70, 10:70] = True
    assert local_similarity(renderer, img * valid, cam.K, T_true, valid) > 0.98


def test_check_names_the_figure():
    check_local_similarity(0.9)
    check_local_similarity(0.75)  # the threshold itself passes
    with pytest.raises(QualityError):
        check_local_similarity(0.7499)
    with pytest.raises(QualityError, match=r"local similarity 0\.62 < 0\.75"):
        check_local_similarity(0.62)
    with pytest.raises(QualityError, match="do not line up"):
        check_local_similarity(float("nan"))
    check_local_similarity(0.7, QualityThresholds(min_local_similarity=0.5))


def test_pipeline_fails_a_pose_whose_edges_are_off_with_the_local_reason():
    cam, renderer, T_true, img = synthetic_view()
    vol = synthetic_bone_ct(48, 4.0)  # the CT of synthetic_view
    valid = np.ones(img.shape, bool)
    # only the local check: the global similarity threshold is off for this test
    th = dataclasses.replace(QualityThresholds(), min_similarity=-1.0)
    opts = RegistrationOptions(refine=False, refine_size=80, thresholds=th)
    ok = register(vol, None, img.numpy(), valid, cam, T_init=T_true, options=opts,
                  renderer=renderer)
    assert ok.status == "ok", ok.message
    assert ok.stages["quality"]["local_similarity"] > 0.98
    T_off = T_true.copy()
    T_off[0, 3] += 12.0
    bad = register(vol, None, img.numpy(), valid, cam, T_init=T_off, options=opts,
                   renderer=renderer)
    assert bad.status == "failed"
    assert "local similarity" in bad.message
    assert bad.T_cam_from_world is None
    assert bad.stages["quality"]["local_similarity"] < th.min_local_similarity
