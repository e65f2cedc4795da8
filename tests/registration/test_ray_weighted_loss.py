"""The training loss counts a scene-coordinate error along the pixel's own ray less than one
across it, and the samples carry those rays in the frame of their targets."""

from __future__ import annotations

import numpy as np
import torch

from registration.engine.camera import Camera, source_position
from registration.engine.dataset import SampleGenerator, bone_box
from registration.engine.phantom_ct import synthetic_bone_ct
from registration.engine.training import (
    ALONG_RAY_WEIGHT,
    ray_weighted_norm,
    scene_coord_loss,
)
from registration.engine.unet import SceneCoordOutput


def _unit_rays(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    d = torch.randn(*shape, generator=g, dtype=torch.float64)
    return d / torch.linalg.norm(d, dim=1, keepdim=True)


def test_along_and_across_parts_are_weighted_as_stated():
    rays = _unit_rays((2, 3, 4, 5), seed=0)
    g = torch.Generator().manual_seed(1)
    r = torch.randn(2, 3, 4, 5, generator=g, dtype=torch.float64)
    along = (r * rays).sum(1, keepdim=True) * rays
    across = r - along
    torch.testing.assert_close(
        ray_weighted_norm(along, rays, 0.25), 0.25 * torch.linalg.norm(along, dim=1),
        rtol=1e-9, atol=1e-5,
    )
    torch.testing.assert_close(
        ray_weighted_norm(across, rays, 0.25), torch.linalg.norm(across, dim=1),
        rtol=1e-9, atol=1e-5,
    )
    torch.testing.assert_close(
        ray_weighted_norm(r, rays, 1.0), torch.linalg.norm(r, dim=1), rtol=1e-9, atol=1e-5
    )


def test_ray_weighted_norm_gradient_float64():
    rays = _unit_rays((1, 3, 2, 2), seed=2)
    r = torch.randn(1, 3, 2, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    r.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: ray_weighted_norm(x, rays, 0.3), (r,))


def test_loss_prefers_an_error_along_the_ray():
    B, H, W = 1, 6, 6
    rays = _unit_rays((B, 3, H, W), seed=4).float()
    g = torch.Generator().manual_seed(5)
    target = torch.randn(B, 6, H, W, generator=g)
    side = torch.cross(rays, torch.randn(B, 3, H, W, generator=g), dim=1)
    side = side / torch.linalg.norm(side, dim=1, keepdim=True)
    mask = torch.ones(B, H, W, dtype=torch.bool)
    scale = torch.zeros(B, 2, H, W)
    logit = torch.full((B, 1, H, W), 5.0)

    def loss(offset: torch.Tensor) -> float:
        pred = target + 0.1 * torch.cat([offset, offset], dim=1)
        out = SceneCoordOutput(pred, scale, logit)
        return float(scene_coord_loss(out, target, mask, mask, rays).total)

    assert loss(rays) < loss(side) - 0.05
    # without rays both offsets of the same length cost the same
    out_a = SceneCoordOutput(target + 0.1 * torch.cat([rays, rays], 1), scale, logit)
    out_b = SceneCoordOutput(target + 0.1 * torch.cat([side, side], 1), scale, logit)
    assert abs(
        float(scene_coord_loss(out_a, target, mask, mask).total)
        - float(scene_coord_loss(out_b, target, mask, mask).total)
    ) < 1e-5
    assert 0.0 < ALONG_RAY_WEIGHT < 1.0


def test_sample_rays_point_from_the_source_through_the_targets():
    vol = synthetic_bone_ct(32, 6.0)
    cam = Camera.from_geometry(128, 128, 1000.0, 2.2, 2.2)
    box = bone_box(vol, 200.0)
    gen = SampleGenerator(vol, cam, box, 32, samples_per_ray=32)
    s = gen.make(np.random.default_rng(7))
    assert s.rays.shape == (3, 32, 32)
    np.testing.assert_allclose(np.linalg.norm(s.rays, axis=0), 1.0, atol=1e-5)
    src = source_position(s.T_cam_from_world)
    entry = box.denormalise(s.coords[:3][:, s.mask].T)  # (N, 3) LPS mm
    d = s.rays[:, s.mask].T
    to_entry = entry - src
    dist = np.linalg.norm(to_entry, axis=1)
    # the entry point lies on its pixel's ray: off it by < 0.01 mm per metre
    off_ray = np.linalg.norm(np.cross(to_entry, d), axis=1)
    assert s.mask.sum() > 20
    assert np.max(off_ray / dist) < 1e-5
    assert np.all((to_entry * d).sum(1) > 0)  # and ahead of the source
