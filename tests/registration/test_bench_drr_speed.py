"""bench_drr's measurements: image agreement, relative error, timing and the table row."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from registration.bench.drr_speed import TABLE_HEADER, ncc, rel_err, row_line, time_round_robin


def test_ncc_ignores_gain_and_offset_but_not_structure() -> None:
    rng = np.random.default_rng(3)
    a = rng.random((16, 16)).astype(np.float32)
    assert ncc(a, 3.0 * a + 7.0) == pytest.approx(1.0, abs=1e-9)
    assert ncc(a, -a) == pytest.approx(-1.0, abs=1e-9)
    assert abs(ncc(a, rng.random((16, 16)))) < 0.3
    assert math.isnan(ncc(a, np.ones_like(a)))


def test_relative_error_is_a_percentage_of_the_reference_mean() -> None:
    ref = np.full((8, 8), 2.0)
    assert rel_err(ref * 1.1, ref) == pytest.approx(10.0, abs=1e-9)
    assert rel_err(ref, ref) == 0.0


def test_round_robin_times_every_render_and_keeps_its_first_image() -> None:
    calls: list[str] = []

    def render(name: str, value: float):
        calls.append(name)
        return torch.full((2, 4, 4), value)

    renders = {"a": lambda: render("a", 1.0), "b": lambda: render("b", 2.0)}
    ms, images = time_round_robin(renders, repeat=3, batch=2, sync=lambda: None)
    assert calls == ["a", "b"] * 4  # one warm-up each, then three rounds in turn
    assert set(ms) == {"a", "b"} and all(v >= 0.0 for v in ms.values())
    assert images["b"].shape == (4, 4) and float(images["b"][0, 0]) == 2.0


def _row(**nano) -> dict:
    return {"device": "cpu", "size": 128, "batch": 1, "ours_ms": 4.0,
            "ours_samples_per_ray": 200, "ours_rays_ms": 8.0, "ours_exact_ms": 5.0, **nano}


def test_table_row_without_and_with_the_reference() -> None:
    line = row_line(_row())
    assert line.split()[:6] == ["cpu", "128", "1", "4.0", "200", "8.0"]
    assert line.count("n/a") == 6
    line = row_line(_row(nanodrr_ms=12.0, ratio_nanodrr_over_ours=3.0,
                         ncc_ours_vs_nanodrr=0.9991234, nanodrr_same_samples_ms=10.0))
    assert "n/a" not in line
    assert line.split()[6:] == ["12.0", "3.00x", "0.999123", "10.0", "2.50x", "5.0", "2.40x"]
    assert len(line) == len(TABLE_HEADER)
