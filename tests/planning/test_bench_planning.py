"""bench_planning: simulated two-view accuracy (small run), JSON output, refusals."""

from __future__ import annotations

import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from simulation.planning_cases import Setup, tool_projection_errors, triangulation_errors


def test_triangulation_error_scales_with_noise_and_separation():
    setup = Setup()
    exact = triangulation_errors(setup, 90.0, 20, 0.0, seed=1)
    assert exact["error_mm"]["max"] < 1e-6
    e90 = triangulation_errors(setup, 90.0, 150, 1.0, seed=2)["error_mm"]["mean"]
    e30 = triangulation_errors(setup, 30.0, 150, 1.0, seed=3)["error_mm"]["mean"]
    # 1 px = 0.3 mm at the detector, ~0.18 mm at the isocentre: sub-millimetre at 90°
    assert 0.05 < e90 < 0.7
    assert e30 > e90


def test_tool_projection_exact_without_noise():
    r = tool_projection_errors(Setup(), 10, seed=4)
    assert r["tip_px"]["max"] < 1e-6 and r["extension_end_px"]["max"] < 1e-6
    noisy = tool_projection_errors(Setup(), 10, seed=4, tracking_mm=0.25, tracking_deg=0.1)
    assert noisy["tip_px"]["mean"] > 0.1


def test_command_writes_json(tmp_path, capsys):
    out = tmp_path / "bench" / "bench_planning.json"
    call_command("bench_planning", "--cases", "20", "--json", str(out))
    data = json.loads(out.read_text())
    assert [r["separation_deg"] for r in data["triangulation"]] == [90.0, 45.0, 30.0]
    assert data["goal"]["met"] is True
    assert "views apart" in capsys.readouterr().out
    assert not list(out.parent.glob(".bench_planning.*"))


def test_command_refuses_bad_arguments(tmp_path):
    with pytest.raises(CommandError, match="--cases"):
        call_command("bench_planning", "--cases", "0")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(CommandError, match="cannot write"):
        call_command("bench_planning", "--cases", "2", "--json", str(blocker / "out.json"))


def test_setup_from_ct_samples_bone_voxels():
    import numpy as np

    from simulation.planning_cases import setup_from_ct

    vol = np.full((10, 12, 14), -1000.0)
    vol[3:6, 4:8, 5:9] = 800.0
    affine = np.diag([2.0, 2.0, 3.0, 1.0])
    affine[:3, 3] = [10.0, 20.0, 30.0]
    setup, bone = setup_from_ct(vol, affine)
    assert len(bone) == 3 * 4 * 4
    assert bone[:, 0].min() == 20.0 and bone[:, 0].max() == 26.0  # i = 5..8
    assert bone[:, 2].min() == 39.0 and bone[:, 2].max() == 45.0  # k = 3..5
    np.testing.assert_allclose(setup.ct_centre, [10 + 13, 20 + 11, 30 + 13.5])
    r = triangulation_errors(setup, 90.0, 5, 0.0, seed=0, bone_points=bone)
    assert r["error_mm"]["max"] < 1e-6
    with pytest.raises(ValueError, match="no bone"):
        setup_from_ct(np.zeros((4, 4, 4)), affine)


def test_command_with_real_ct(tmp_path):
    from tests.conftest import shared_path

    ct = shared_path("ct", "abdomen_pelvis_totalseg_sm.nii.gz")
    out = tmp_path / "b.json"
    call_command("bench_planning", "--cases", "10", "--ct", str(ct), "--json", str(out))
    data = json.loads(out.read_text())
    assert "bone voxels" in data["setup"]["ct"]
    assert data["triangulation"][0]["error_mm"]["mean"] < 0.7


def test_command_refuses_bad_ct(tmp_path):
    bad = tmp_path / "x.nii.gz"
    bad.write_bytes(b"not a nifti")
    with pytest.raises(CommandError, match="cannot use CT"):
        call_command("bench_planning", "--cases", "2", "--ct", str(bad))
