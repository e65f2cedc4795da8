"""bench_registration --heldout ood end to end on a tiny CT: shots written as files,
registered through register_xray's path, the report and JSON written."""

from __future__ import annotations

import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from registration.bench.ood_bench import shots_for_ct
from simulation.heldout import load_bench_ct
from tests.registration.tiny_ct import write_tiny_ct


def test_ood_run_writes_its_json(tmp_path):
    ct = write_tiny_ct(tmp_path / "tiny.nii.gz")
    # the shots rendered beforehand with few samples per ray; the command reuses them
    shots_for_ct(load_bench_ct(ct), "tiny", tmp_path / "shots", 1, 1000, print, n_samples=32)
    out = tmp_path / "bench.json"
    call_command("bench_registration", "--heldout", "ood", "--ct", str(ct), "--n-images", "1",
                 "--ood-modes", "init_3_5", "--shots-dir", str(tmp_path / "shots"),
                 "--json", str(out), verbosity=0)
    rep = json.loads(out.read_text())
    assert rep["heldout"] == "ood" and "cts" not in rep  # no in-distribution part asked
    ood = rep["ood"]
    assert ood["modes"] == ["init_3_5"] and len(ood["rows"]) == 1
    kinds = [r["kind"] for r in ood["rows"]]
    assert kinds == ["closeup"]  # the first of every six
    for r in ood["rows"]:
        assert r["ct"] == "tiny" and r["given_start"] == "true pose + 3 deg / 5 mm"
        assert r["mtre_start_mm"] > 1.0  # the perturbed start is off the truth
        assert r["status"] in ("ok", "failed") and r["seconds"]["total"] > 0
        assert (r["mtre_mm"] is None) == (r["status"] != "ok")
    s = ood["report"]["init_3_5"]["all_cts"]["all"]
    assert s["n"] == 1 and s["refused"] == sum(r["status"] != "ok" for r in ood["rows"])
    assert set(ood["report"]["init_3_5"]["per_ct"]) == {"tiny"}
    assert len(ood["cts"][0]["shots"]) == 1
    assert (tmp_path / "shots" / "tiny_seed1000_n1" / "shots.json").is_file()


def test_unknown_mode_is_refused_before_any_work(tmp_path):
    ct = write_tiny_ct(tmp_path / "tiny.nii.gz")
    with pytest.raises(CommandError, match="unknown --ood-modes warp"):
        call_command("bench_registration", "--heldout", "ood", "--ct", str(ct),
                     "--ood-modes", "warp", "--json", str(tmp_path / "b.json"), verbosity=0)
    assert not (tmp_path / "b.json").exists()
