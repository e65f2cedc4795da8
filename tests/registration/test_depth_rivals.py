"""The depth-rival self-check: a view that fixes the depth lets no copy moved along the
beam match as well; a nearly parallel view, which cannot see depth, does."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from geometry.camera import Camera
from geometry.carm import carm_pose
from registration.engine.depth_rivals import DepthRivals, depth_rivals
from registration.engine.quality import (
    QualityError,
    QualityThresholds,
    check_depth_rivals,
    depth_rival_margin,
)
from tests.registration.synthetic_view import synthetic_view


@pytest.fixture(scope="module")
def scene():
    return synthetic_view()


def test_a_perspective_view_fixes_the_depth(scene):
    cam, renderer, T_true, img = scene
    r = depth_rivals(renderer, img, cam.K, T_true, np.zeros(3), centre_world=np.zeros(3))
    gap, dist, _offset = r.closest_rival(10.0)
    assert dist > 10.0
    assert gap > 0.01, r.as_stage(10.0)  # every far copy matches clearly worse
    check_depth_rivals(r, QualityThresholds(depth_rival_margin=0.01))


def test_a_nearly_parallel_view_does_not(scene):
    """At 20 m from the source a 30 mm depth move changes the magnification by 0.15 %:
    a refitted copy matches almost as well, and the check refuses the pose."""
    _cam, renderer, _T, _img = scene
    cam = Camera.from_geometry(80, 80, 20000.0, 3.6, 3.6)
    T = carm_pose(20.0, 10.0, 19650.0, [5.0, 0.0, 0.0])
    with torch.no_grad():
        img = renderer.render(torch.as_tensor(T[None], dtype=torch.float32),
                              torch.as_tensor(cam.K, dtype=torch.float32), 80, 80,
                              samples_per_ray=128)[0]
    r = depth_rivals(renderer, img, cam.K, T, np.zeros(3), centre_world=np.zeros(3))
    gap, dist, _offset = r.closest_rival(10.0)
    assert dist > 10.0 and gap < 0.005, r.as_stage(10.0)
    with pytest.raises(QualityError, match="depth along the beam is not determined") as e:
        check_depth_rivals(r, QualityThresholds(depth_rival_margin=0.01))
    assert e.value.stage == "consistency"


def _rivals(sims, dists, ref=0.95):
    return DepthRivals([-30.0, -15.0, 15.0, 30.0][: len(sims)], sims, dists, ref)


@pytest.mark.parametrize(("sims", "dists", "refused"), [
    ([0.90, 0.93, 0.94, 0.90], [30.0, 15.0, 15.0, 30.0], True),   # 0.01 below: too close
    ([0.90, 0.92, 0.92, 0.90], [30.0, 15.0, 15.0, 30.0], False),  # 0.03 below everywhere
    ([0.90, 0.96, 0.92, 0.90], [30.0, 15.0, 15.0, 30.0], True),   # a copy matches better
    ([0.90, 0.95, 0.92, 0.90], [30.0, 8.0, 15.0, 30.0], False),   # the close one is near
    ([0.90, 0.92, float("nan"), 0.90], [30.0, 15.0, 15.0, 30.0], True),  # lost copy
])
def test_the_rule(sims, dists, refused):
    th = QualityThresholds(depth_rival_margin=0.02)
    r = _rivals(sims, dists)
    if refused:
        with pytest.raises(QualityError):
            check_depth_rivals(r, th)
    else:
        check_depth_rivals(r, th)


def test_figures_only_without_a_margin():
    check_depth_rivals(_rivals([0.99] * 4, [30.0] * 4), QualityThresholds(depth_rival_margin=None))


@pytest.mark.parametrize(("voxel_mm", "margin"), [
    (None, 0.004), (0.75, 0.004), (1.0, 0.004), (1.5, 0.006), (2.0, 0.008), (3.0, 0.008),
    (6.0, 0.008)])
def test_the_margin_grows_with_the_voxels(voxel_mm, margin):
    assert depth_rival_margin(QualityThresholds(), voxel_mm) == pytest.approx(margin)
    off = QualityThresholds(depth_rival_margin_per_voxel_mm=False)
    assert depth_rival_margin(off, voxel_mm) == pytest.approx(0.004)


def test_a_coarse_ct_refuses_what_a_fine_one_passes():
    r = _rivals([0.90, 0.944, 0.944, 0.90], [30.0, 15.0, 15.0, 30.0])  # gap 0.006
    check_depth_rivals(r, QualityThresholds(), voxel_mm=0.8)
    with pytest.raises(QualityError):
        check_depth_rivals(r, QualityThresholds(), voxel_mm=3.0)
