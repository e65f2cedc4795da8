"""Refining several starts as one batch gives each start the pose it gets alone."""

from __future__ import annotations

import numpy as np
import torch

from geometry.camera import Camera
from geometry.carm import carm_pose
from geometry.rigid import perturb_pose, pose_distance_mm
from registration.engine.drr import DrrRenderer
from registration.engine.refine import RefineLevel, refine_pose, refine_poses
from simulation.phantom_ct import synthetic_bone_ct

# float32 rendering in a batch of 3 vs alone: the same arithmetic per pose, so the poses
# agree far below the renderer's voxel size (4 mm); the similarity to float32 rounding
POSE_TOL_MM = 1e-2
SIM_TOL = 1e-5


def _scene():
    vol = synthetic_bone_ct(40, 4.0)
    cam = Camera.from_geometry(64, 64, 1000.0, 4.5, 4.5)
    renderer = DrrRenderer(vol, bone_threshold_hu=200.0)
    T_true = carm_pose(15.0, -10.0, 650.0, [4.0, -3.0, 2.0])
    with torch.no_grad():
        img = renderer.render(torch.as_tensor(T_true[None], dtype=torch.float32),
                              torch.as_tensor(cam.K, dtype=torch.float32), 64, 64,
                              samples_per_ray=96)[0]
    return cam, renderer, img, T_true


def test_batch_matches_one_at_a_time():
    cam, renderer, img, T_true = _scene()
    rng = np.random.default_rng(3)
    starts = [perturb_pose(T_true, 4.0, 8.0, rng, center_world=np.zeros(3)) for _ in range(3)]
    # patience 3 makes the starts stop at different iterations: a stopped one must not count
    levels = (RefineLevel(4, 16, 1.5, 32), RefineLevel(2, 8, 0.5, 48))
    kw = dict(pivot_world=np.zeros(3), levels=levels, patience=3)
    weight = torch.ones_like(img)
    batch = refine_poses(renderer, img, cam.K, starts, weight=weight, **kw)
    alone = [refine_pose(renderer, img, cam.K, T, weight=weight, **kw) for T in starts]
    assert len(batch) == 3
    iters = {r.iterations for r in alone}
    for b, a in zip(batch, alone, strict=True):
        assert pose_distance_mm(b.T_cam_from_world, a.T_cam_from_world, np.zeros(3)) < POSE_TOL_MM
        assert abs(b.similarity - a.similarity) < SIM_TOL
        assert b.iterations == a.iterations
        assert b.similarity > b.initial_similarity
    assert len(iters) > 1, "the starts should stop after different numbers of iterations"
