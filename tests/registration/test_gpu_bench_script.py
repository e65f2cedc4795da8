"""scripts/gpu_bench.py (the Django-free GPU device check) end to end on a CPU and a tiny CT."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from tests.registration.tiny_ct import write_tiny_ct

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "gpu_bench.py"


def _load_script():
    spec = importlib.util.spec_from_file_location("gpu_bench", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture()
def tiny_ct(tmp_path, monkeypatch):
    for k, v in {"ORTHOFUSE_TRAIN_POOL": "4", "ORTHOFUSE_TRAIN_SIZE": "32",
                 "ORTHOFUSE_TRAIN_BATCH": "2"}.items():
        monkeypatch.setenv(k, v)
    return write_tiny_ct(tmp_path / "tiny.nii.gz")


def test_gpu_bench_runs_on_a_cpu(tiny_ct, tmp_path, capsys):
    out = tmp_path / "gpu.json"
    mod = _load_script()
    assert mod.main(["--ct", str(tiny_ct), "--device", "cpu", "--train-minutes", "0.03",
                     "--n-images", "1", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["device"] == "cpu" and report["gpu"] is None
    assert report["training"]["steps"] >= 1
    assert report["summary"]["refined"]["n"] == 1
    assert len(report["per_image"]) == 1
    for row in report["per_image"]:
        assert row["seconds"] > 0 and row["status"] in ("ok", "failed")
    assert report["seconds_per_image"]["total_mean"] > 0
    assert "seconds/image" in capsys.readouterr().out


def test_gpu_bench_refuses_bad_arguments(tiny_ct):
    mod = _load_script()
    with pytest.raises(SystemExit):
        mod.parse_args(["--ct", str(tiny_ct), "--device", "cpu", "--n-images", "0"])
    with pytest.raises(SystemExit):
        mod.parse_args(["--ct", "/nonexistent.nii.gz", "--device", "cpu"])
