"""Training runs its forward pass in bfloat16 where the hardware does it natively; the
stored network is float32 and a bf16-trained network still learns."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from geometry.camera import Camera
from registration.engine.training import get_preset, native_bf16, train_model, training_dtype
from simulation.phantom_ct import synthetic_bone_ct


def test_precision_names_map_to_dtypes():
    assert training_dtype("fp32", "cpu") == torch.float32
    assert training_dtype("bf16", "cpu") == torch.bfloat16
    assert training_dtype("auto", "cpu") == (torch.bfloat16 if native_bf16("cpu") else torch.float32)
    with pytest.raises(ValueError, match="unknown precision 'fp16'"):
        training_dtype("fp16", "cpu")


def test_precision_can_be_set_from_the_environment(monkeypatch):
    from webapp.env import training_overrides

    monkeypatch.setenv("ORTHOFUSE_TRAIN_PRECISION", "fp32")
    monkeypatch.setenv("ORTHOFUSE_TRAIN_STEPS", "12")
    preset = get_preset("quick", training_overrides())
    assert preset.precision == "fp32" and preset.steps == 12
    monkeypatch.setenv("ORTHOFUSE_TRAIN_STEPS", "twelve")
    with pytest.raises(ValueError, match="ORTHOFUSE_TRAIN_STEPS='twelve' is not a int"):
        training_overrides()
    with pytest.raises(ValueError, match="unknown training preset field"):
        get_preset("quick", {"stepz": 3})


@pytest.mark.parametrize("precision", ["bf16", "fp32"])
def test_a_short_run_lowers_the_loss_in_either_precision(precision):
    torch.set_num_threads(2)
    vol = synthetic_bone_ct(24, 8.0)
    cam = Camera.from_geometry(64, 64, 1000.0, 4.0, 4.0)
    preset = dataclasses.replace(
        get_preset("quick"), input_size=16, base_channels=4, depth=2, steps=60, batch_size=4,
        pool_size=8, refresh_per_step=0.0, samples_per_ray=16, lr=3e-3, max_seconds=120.0,
        precision=precision,
    )
    result = train_model(vol, cam, preset=preset, seed=2)
    assert result.meta["training_precision"] == {"bf16": "bfloat16", "fp32": "float32"}[precision]
    assert all(p.dtype == torch.float32 for p in result.net.parameters())
    losses = [h["loss"] for h in result.history]
    first, last = sum(losses[:2]) / 2, sum(losses[-2:]) / 2
    assert last < first - 0.2, (first, last)


def test_cpu_bf16_needs_amx(monkeypatch):
    """AVX-512-BF16 without AMX trains slower in bfloat16, so "auto" keeps float32 there."""
    import registration.engine.training as training

    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: True)
    monkeypatch.setattr(training, "cpu_has_amx", lambda: False)
    assert training_dtype("auto", "cpu") == torch.float32
    monkeypatch.setattr(training, "cpu_has_amx", lambda: True)
    assert training_dtype("auto", "cpu") == torch.bfloat16
