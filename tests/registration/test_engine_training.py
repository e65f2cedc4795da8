"""Training the scene-coordinate network for a few steps lowers its loss."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from geometry.camera import Camera
from registration.engine.dataset import NoBoneError, SampleGenerator, bone_box, simulate_appearance
from registration.engine.training import get_preset, train_model
from registration.engine.training_loss import scene_coord_loss
from registration.engine.unet import SceneCoordUNet, normalise_image
from simulation.phantom_ct import synthetic_bone_ct


def _fixed_batch(vol, cam, box, size, n, seed):
    gen = SampleGenerator(vol, cam, box, size, samples_per_ray=48)
    rng = np.random.default_rng(seed)
    imgs, coords, masks, valids = [], [], [], []
    for _ in range(n):
        s = gen.make(rng)
        img, val = simulate_appearance(torch.from_numpy(s.drr), torch.from_numpy(s.valid), rng)
        imgs.append(normalise_image(img[None], val[None])[0])
        coords.append(torch.from_numpy(s.coords))
        masks.append(torch.from_numpy(s.mask) & val)
        valids.append(val)
    return torch.stack(imgs), torch.stack(coords), torch.stack(masks), torch.stack(valids)


def test_training_lowers_loss():
    torch.manual_seed(0)
    vol = synthetic_bone_ct(40, 5.0)
    cam = Camera.from_geometry(160, 160, 1000.0, 1.8, 1.8)
    box = bone_box(vol, 200.0)
    preset = dataclasses.replace(get_preset("quick"), input_size=32, base_channels=8, depth=3,
                                 steps=40, batch_size=4, pool_size=12, refresh_per_step=0.0,
                                 samples_per_ray=48, lr=3e-3)
    result = train_model(vol, cam, preset=preset, seed=3)
    x, c, m, v = _fixed_batch(vol, cam, box, 32, 6, seed=11)
    assert m.float().mean() > 0.02  # the held-out batch shows bone
    untrained = SceneCoordUNet(base=8, depth=3).eval()
    with torch.no_grad():
        before = float(scene_coord_loss(untrained(x), c, m, v).total)
        after = float(scene_coord_loss(result.net.eval()(x), c, m, v).total)
    assert after < before - 0.2, (before, after)
    hist = result.history
    assert hist[-1]["loss_ema"] < hist[0]["loss"]
    meta = result.meta
    assert meta["input_size"] == 32
    assert meta["normalisation"]["scale_mm"] == pytest.approx(float(np.max(box.half_extent)))
    assert meta["training"]["steps_done"] == 40


def test_training_refuses_ct_without_bone():
    vol = synthetic_bone_ct(24, 8.0, bone=False)
    cam = Camera.from_geometry(64, 64, 1000.0, 4.0, 4.0)
    with pytest.raises(NoBoneError, match="no bone"):
        train_model(vol, cam, preset=dataclasses.replace(get_preset("quick"), steps=1))
