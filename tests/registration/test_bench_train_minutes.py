"""bench_registration --train-minutes: the clock, not the preset's step count, bounds the
training, and the model is cached apart from the preset's."""

from __future__ import annotations

import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from tests.registration.test_bench_network_only import tiny_ct  # noqa: F401 (fixture)


def test_train_minutes_trains_by_the_clock(tiny_ct, tmp_path):  # noqa: F811
    out = tmp_path / "bench.json"
    models = tmp_path / "models"
    call_command("bench_registration", "--ct", str(tiny_ct), "--n-images", "1", "--network-only",
                 "--train-minutes", "0.05", "--models", str(models), "--json", str(out),
                 verbosity=0)
    report = json.loads(out.read_text())
    assert report["train_minutes"] == pytest.approx(0.05)
    model = report["cts"][0]["model"]
    meta = json.loads((models / "tiny_quick_0.05min" / "model.json").read_text())
    # ORTHOFUSE_TRAIN_STEPS=8 no longer bounds the run: the 3 s budget does
    assert meta["preset_params"]["max_seconds"] == pytest.approx(3.0)
    assert meta["preset_params"]["steps"] >= 10**6
    assert model["steps"] == meta["training"]["steps_done"]
    assert model["seconds"] < 30.0  # the clock stopped it (3 s of training, with slack)
    assert not (models / "tiny_quick").exists()


@pytest.mark.parametrize("minutes", ["0", "-1", "2000"])
def test_train_minutes_out_of_range_is_refused(tiny_ct, tmp_path, minutes):  # noqa: F811
    with pytest.raises(CommandError, match="--train-minutes must be in"):
        call_command("bench_registration", "--ct", str(tiny_ct), "--train-minutes", minutes,
                     "--models", str(tmp_path / "m"), "--json", str(tmp_path / "b.json"),
                     verbosity=0)
