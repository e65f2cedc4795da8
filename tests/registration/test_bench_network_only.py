"""bench_registration --network-only: network + PnP alone on held-out shots of a tiny CT,
with the quick preset shrunk through environment variables."""

from __future__ import annotations

import json

import pytest
from django.core.management import call_command

from tests.registration.tiny_ct import write_tiny_ct

TINY = {"ORTHOFUSE_TRAIN_STEPS": "8", "ORTHOFUSE_TRAIN_POOL": "4", "ORTHOFUSE_TRAIN_SIZE": "32",
        "ORTHOFUSE_TRAIN_BATCH": "2"}


@pytest.fixture()
def tiny_ct(tmp_path, monkeypatch):
    for k, v in TINY.items():
        monkeypatch.setenv(k, v)
    return write_tiny_ct(tmp_path / "tiny.nii.gz")


def test_network_only_reports_pnp_alone(tiny_ct, tmp_path):
    out = tmp_path / "bench.json"
    call_command("bench_registration", "--ct", str(tiny_ct), "--n-images", "2", "--network-only",
                 "--models", str(tmp_path / "models"), "--json", str(out), verbosity=0)
    report = json.loads(out.read_text())
    ct = report["cts"][0]
    assert list(ct["summary"]) == ["no_refine"]
    assert ct["summary"]["no_refine"]["n"] == 2
    assert all(not v for k, v in ct["per_image_mtre"].items() if k != "no_refine")
    assert set(ct["self_check_confusion"]) == {"network_only"}
    assert sum(ct["self_check_confusion"]["network_only"].values()) == 2
    sdd = ct["camera"]["source_to_detector_mm"]
    for row in ct["per_image"]:
        # the bone centre lies between source and detector at the sampled true pose
        assert 0.4 * sdd < row["true_centre_depth_mm"] < 0.9 * sdd
        assert "refine" not in row["stages"]
    # a second run reuses the cached model
    call_command("bench_registration", "--ct", str(tiny_ct), "--n-images", "1", "--network-only",
                 "--models", str(tmp_path / "models"), "--json", str(out), verbosity=0)
    assert "reused" in json.loads(out.read_text())["cts"][0]["model"]
