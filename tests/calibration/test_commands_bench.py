"""bench_calibration smoke test: runs two small cases and writes the JSON summary."""

import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError


@pytest.mark.slow
def test_bench_calibration_small(tmp_path, capsys):
    out = tmp_path / "bench.json"
    call_command("bench_calibration", cases=2, size=512, json=str(out))
    data = json.loads(out.read_text())
    assert data["cases_calibrated"] == 2
    m = data["metrics"]
    for key in ("holdout_rms_mm", "source_lateral_mm", "triangulation_mm", "opencv_holdout_rms_mm"):
        assert m[key]["n"] >= 2
    assert m["holdout_rms_mm"]["max"] < 0.10
    assert m["source_lateral_mm"]["max"] < 0.5
    assert 0 <= data["success_rate_30pct_hidden"] <= 1
    text = capsys.readouterr().out
    assert "hold-out residual RMS after dewarp" in text


def test_bench_rejects_bad_options(tmp_path):
    with pytest.raises(CommandError, match="--cases must be at least 2"):
        call_command("bench_calibration", cases=1, json=str(tmp_path / "b.json"))
    assert not (tmp_path / "b.json").exists()
