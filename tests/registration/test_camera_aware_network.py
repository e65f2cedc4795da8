"""The camera-aware network: ray-direction input channels, their scaling and persistence."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from registration.engine.camera import Camera
from registration.engine.dataset import window_camera
from registration.engine.model_io import load_model, save_model
from registration.engine.phantom_ct import synthetic_bone_ct
from registration.engine.pipeline import network_correspondences
from registration.engine.training import get_preset, train_model
from registration.engine.unet import SceneCoordUNet, ray_channels


def test_ray_channels_are_the_pixel_ray_tangents():
    K = np.array([[800.0, 0.0, 30.5], [0.0, 820.0, 20.25], [0.0, 0.0, 1.0]])
    rays = ray_channels(K, 40, 64, tan_scale=0.05).numpy()
    assert rays.shape == (2, 40, 64)
    v, u = 7, 50
    assert rays[0, v, u] == pytest.approx((u - 30.5) / 800.0 / 0.05, abs=1e-6)
    assert rays[1, v, u] == pytest.approx((v - 20.25) / 820.0 / 0.05, abs=1e-6)
    # the principal point is the optical axis
    rays_pp = ray_channels(np.array([[500.0, 0, 10.0], [0, 500.0, 12.0], [0, 0, 1]]), 24, 24, 1.0)
    assert rays_pp[:, 12, 10].abs().max() < 1e-7


def test_close_up_window_has_a_narrower_field_than_the_full_view():
    cam = Camera.from_geometry(512, 512, 1000.0, 0.6, 0.6)
    tan_scale = 0.5 * 512 / float(cam.K[0, 0])
    full = window_camera(cam, 0.0, 0.0, 512.0, 64)
    close = window_camera(cam, 128.0, 128.0, 256.0, 64)
    r_full = ray_channels(full.K, 64, 64, tan_scale)
    r_close = ray_channels(close.K, 64, 64, tan_scale)
    # a full view spans [-1, 1] to within half a pixel; the centred half-size window half that
    assert float(r_full[0].max()) == pytest.approx(1.0, abs=1.0 / 64)
    assert float(r_full[0].min()) == pytest.approx(-1.0, abs=1.0 / 64)
    assert float(r_close[0].max() - r_close[0].min()) == pytest.approx(
        0.5 * float(r_full[0].max() - r_full[0].min()), rel=1e-6)


def test_camera_aware_network_needs_intrinsics_and_checks_channels():
    net = SceneCoordUNet(base=4, depth=2, ray_inputs=True, ray_tan_scale=0.15)
    img = torch.zeros(2, 1, 16, 16)
    with pytest.raises(ValueError, match="one intrinsic matrix per image"):
        net.make_input(img)
    x = net.make_input(img, [np.eye(3), np.eye(3)])
    assert x.shape == (2, 3, 16, 16)
    with pytest.raises(ValueError, match=r"expected \(B, 3, H, W\)"):
        net(img)
    plain = SceneCoordUNet(base=4, depth=2)
    assert plain.make_input(img, None) is img
    with pytest.raises(ValueError, match="ray_tan_scale"):
        SceneCoordUNet(base=4, depth=2, ray_inputs=True, ray_tan_scale=0.0)


def test_camera_aware_model_trains_saves_and_runs(tmp_path):
    torch.manual_seed(0)
    vol = synthetic_bone_ct(40, 5.0)
    cam = Camera.from_geometry(160, 160, 1000.0, 1.8, 1.8)
    preset = dataclasses.replace(get_preset("quick"), input_size=32, base_channels=8, depth=3,
                                 steps=15, batch_size=4, pool_size=8, refresh_per_step=0.0,
                                 samples_per_ray=32, lr=3e-3, ray_inputs=True)
    result = train_model(vol, cam, preset=preset, seed=5)
    assert result.net.in_channels == 3
    assert result.net.ray_tan_scale == pytest.approx(0.5 * 160 / float(cam.K[0, 0]))
    meta = dict(result.meta, ct_fingerprint="x")
    save_model(tmp_path / "m", result.net, meta)
    model = load_model(tmp_path / "m")
    assert model.meta["architecture"]["ray_inputs"] is True
    assert model.net.in_channels == 3
    for a, b in zip(result.net.state_dict().values(), model.net.state_dict().values(),
                    strict=True):
        assert torch.equal(a, b)
    # the same image with different intrinsics gives different predictions: the rays count
    K = window_camera(cam, 0.0, 0.0, 160.0, 32).K
    K_close = window_camera(cam, 40.0, 40.0, 80.0, 32).K
    rng = np.random.default_rng(0)
    img = rng.random((32, 32)).astype(np.float32)
    valid = np.ones((32, 32), bool)
    a = network_correspondences(model, img, valid, K)
    b = network_correspondences(model, img, valid, K_close)
    assert not np.allclose(a["bone_prob"], b["bone_prob"], atol=1e-6)


def test_plain_model_from_before_ray_inputs_still_loads(tmp_path):
    net = SceneCoordUNet(base=4, depth=2)
    meta = {"input_size": 16, "normalisation": {"centre_lps_mm": [0, 0, 0], "scale_mm": 1.0},
            "bone_threshold_hu": 200.0}
    save_model(tmp_path / "old", net, meta)
    # a model.json written before the field existed has no ray_inputs key
    import json

    path = tmp_path / "old" / "model.json"
    data = json.loads(path.read_text())
    for key in ("ray_inputs", "ray_tan_scale", "inputs"):
        data["architecture"].pop(key)
    path.write_text(json.dumps(data))
    model = load_model(tmp_path / "old")
    assert model.net.in_channels == 1
