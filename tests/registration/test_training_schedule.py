"""The learning rate follows the training budget, whether steps or seconds run out first."""

from __future__ import annotations

import dataclasses

import pytest

from geometry.camera import Camera
from registration.engine import training
from registration.engine.training import (
    FINAL_LR_FACTOR,
    WARMUP_FRACTION,
    budget_fraction,
    get_preset,
    learning_rate,
    train_model,
)
from simulation.phantom_ct import synthetic_bone_ct


def test_budget_fraction_takes_the_larger_share():
    assert budget_fraction(100, 1000, 10.0, 1000.0) == pytest.approx(0.1)
    assert budget_fraction(100, 1000, 500.0, 1000.0) == pytest.approx(0.5)
    assert budget_fraction(2000, 1000, 0.0, 1000.0) == 1.0
    assert budget_fraction(0, 1000, 5.0, 0.0) == 0.0  # no time limit: steps only


def test_learning_rate_warms_up_then_decays_to_the_floor():
    max_lr = 2e-3
    assert learning_rate(0.0, max_lr) == pytest.approx(0.04 * max_lr)
    assert learning_rate(WARMUP_FRACTION, max_lr) == pytest.approx(max_lr)
    assert learning_rate(1.0, max_lr) == pytest.approx(FINAL_LR_FACTOR * max_lr)
    rates = [learning_rate(i / 100, max_lr) for i in range(101)]
    peak = rates.index(max(rates))
    assert all(a <= b for a, b in zip(rates[:peak], rates[1 : peak + 1], strict=True))
    assert all(a >= b for a, b in zip(rates[peak:-1], rates[peak + 1 :], strict=True))


class _FakeClock:
    """Stands in for the ``time`` module in training: every reading advances ``tick_s``, so
    the run's budget is spent in the same steps however loaded the machine is."""

    def __init__(self, tick_s: float) -> None:
        self.now = 0.0
        self.tick_s = tick_s

    def perf_counter(self) -> float:
        self.now += self.tick_s
        return self.now

    def process_time(self) -> float:
        return self.now


def test_a_run_stopped_by_its_time_limit_ends_annealed(monkeypatch):
    monkeypatch.setattr(training, "time", _FakeClock(0.02))
    vol = synthetic_bone_ct(24, 8.0)
    cam = Camera.from_geometry(64, 64, 1000.0, 4.0, 4.0)
    preset = dataclasses.replace(
        get_preset("quick"), input_size=16, base_channels=4, depth=2, steps=100000,
        batch_size=2, pool_size=4, refresh_per_step=0.0, samples_per_ray=16, max_seconds=3.0,
    )
    result = train_model(vol, cam, preset=preset, seed=1)
    steps_done = result.meta["training"]["steps_done"]
    assert 10 < steps_done < 100000  # the clock, not the step count, ended it
    last_lr = result.history[-1]["lr"]
    assert last_lr < 0.1 * preset.lr, (steps_done, last_lr)
