"""The coarse pose search brings a start several centimetres off sideways into the
refinement's capture range, and returns distinct candidates best first."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from geometry.camera import Camera
from geometry.carm import carm_pose
from geometry.rigid import pose_distance_mm, target_error_mm
from registration.engine.drr import DrrRenderer
from registration.engine.refine import RefineLevel, refine_pose
from registration.engine.search import SearchSpace, coarse_search
from simulation.phantom_ct import synthetic_bone_ct

LEVELS = (RefineLevel(4, 40, 1.5, 48), RefineLevel(2, 30, 0.5, 64), RefineLevel(1, 12, 0.15, 96))
SPACE = SearchSpace(shift_mm=48.0, shift_step_mm=12.0, size_px=40, top_k=3)


@pytest.fixture(scope="module")
def scene():
    vol = synthetic_bone_ct(48, 4.0)
    cam = Camera.from_geometry(80, 80, 1000.0, 3.6, 3.6)
    renderer = DrrRenderer(vol, bone_threshold_hu=200.0)
    bone = np.argwhere(vol.array > 200)[:, ::-1][::40].astype(float)
    targets = vol.voxel_to_world(bone)
    T_true = carm_pose(20.0, 10.0, 650.0, [5.0, 0.0, 0.0])
    with torch.no_grad():
        img = renderer.render(torch.as_tensor(T_true[None], dtype=torch.float32),
                              torch.as_tensor(cam.K, dtype=torch.float32), 80, 80,
                              samples_per_ray=96)[0]
    return cam, renderer, targets, T_true, img


def test_search_then_refinement_recovers_a_far_start(scene):
    """48 mm off (mostly sideways, 4 deg): the search lands in the refinement's basin."""
    cam, renderer, targets, T_true, img = scene
    T_start = carm_pose(23.0, 7.0, 650.0, [5.0 + 35.0, -30.0, 10.0])
    before = target_error_mm(targets, T_start, T_true).mean()
    res = coarse_search(renderer, img, cam.K, T_start, np.zeros(3), space=SPACE)
    assert before > 35.0
    assert res.similarity > res.start_similarity + 0.1
    rr = refine_pose(renderer, img, cam.K, res.T_cam_from_world, pivot_world=np.zeros(3),
                     levels=LEVELS)
    after = target_error_mm(targets, rr.T_cam_from_world, T_true).mean()
    assert after < 1.0, (before, after)
    assert res.n_evaluated == 1 + 9 * 9 + SPACE.top_k * sum(SPACE.iterations)


def test_search_keeps_a_good_start(scene):
    cam, renderer, targets, T_true, img = scene
    res = coarse_search(renderer, img, cam.K, T_true, np.zeros(3), space=SPACE)
    assert target_error_mm(targets, res.T_cam_from_world, T_true).mean() < 8.0
    assert res.similarity >= res.start_similarity


def test_candidates_are_distinct_and_sorted(scene):
    cam, renderer, _targets, T_true, img = scene
    T_start = carm_pose(20.0, 10.0, 650.0, [40.0, 20.0, 0.0])
    res = coarse_search(renderer, img, cam.K, T_start, np.zeros(3), space=SPACE)
    sims = [s for s, _ in res.candidates]
    assert 1 <= len(sims) <= SPACE.top_k
    assert sims == sorted(sims, reverse=True)
    assert sims[0] == pytest.approx(res.similarity)
    poses = [T for _, T in res.candidates]
    for i in range(len(poses)):
        R = poses[i][:3, :3]
        np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-9)
        for j in range(i):
            assert pose_distance_mm(poses[i], poses[j], np.zeros(3)) >= SPACE.distinct_mm
