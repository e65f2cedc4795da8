"""bench_self_check: the self-check threshold study on held-out shots of a tiny CT."""

from __future__ import annotations

import json

import pytest
from django.core.management import CommandError, call_command

from tests.registration.tiny_ct import write_tiny_ct
from webapp.xray_registration.management.commands.bench_self_check import separation


@pytest.fixture()
def tiny_ct(tmp_path):
    return write_tiny_ct(tmp_path / "tiny.nii.gz")


def test_study_scores_true_and_refined_poses(tiny_ct, tmp_path):
    out = tmp_path / "study.json"
    call_command("bench_self_check", "--ct", str(tiny_ct), "--n-images", "2", "--starts", "1",
                 "--json", str(out), verbosity=0)
    report = json.loads(out.read_text())
    poses = report["cts"][0]["poses"]
    assert [p["pose"] for p in poses] == ["true", "refined"] * 2
    for p in poses:
        assert -1.0 <= p["similarity"] <= 1.0 and -1.0 <= p["local_similarity"] <= 1.0
    for p in (p for p in poses if p["pose"] == "true"):
        assert p["mtre_mm"] == pytest.approx(0.0, abs=1e-9)
        assert p["local_similarity"] > 0.9  # the X-ray is a noisy DRR of this very pose
    s = report["pooled"]["global_and_local"]
    assert s["n_right"] + s["n_wrong"] == 4
    assert set(report["pooled"]["local_sweep"]) == {"0.6", "0.65", "0.7", "0.75", "0.8",
                                                    "0.85", "0.9"}


def test_separation_counts():
    rows = [{"mtre_mm": 1.0, "similarity": 0.9, "local_similarity": 0.95},
            {"mtre_mm": 2.0, "similarity": 0.6, "local_similarity": 0.95},  # right, rejected
            {"mtre_mm": 30.0, "similarity": 0.8, "local_similarity": 0.7},  # wrong, local stops it
            {"mtre_mm": 12.5, "similarity": 0.9, "local_similarity": 0.9}]  # wrong, passes
    g = separation(rows, 0.65, None)
    assert (g["n_right"], g["right_rejected"], g["n_wrong"], g["wrong_accepted"]) == (2, 1, 2, 2)
    b = separation(rows, 0.65, 0.75)
    assert (b["right_rejected"], b["wrong_accepted"], b["wrong_accepted_mtre_mm"]) == (1, 1, [12.5])


def test_bad_arguments_are_refused(tiny_ct):
    with pytest.raises(CommandError, match="--n-images"):
        call_command("bench_self_check", "--ct", str(tiny_ct), "--n-images", "0")
    with pytest.raises(CommandError, match="CT not found"):
        call_command("bench_self_check", "--ct", "/nonexistent/ct.nii.gz")
