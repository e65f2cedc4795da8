"""``manage.py bench_drr`` on a tiny CT: table, JSON, and agreement with the reference."""

from __future__ import annotations

import json

import numpy as np
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from tests.engine.helpers import box_volume


def test_bench_drr_writes_json(tmp_path, capsys):
    nib = pytest.importorskip("nibabel")
    vol = box_volume()
    ras = vol.affine.copy()
    ras[:2] *= -1.0
    ct = tmp_path / "ct.nii.gz"
    nib.save(nib.Nifti1Image(vol.array.transpose(2, 1, 0).astype(np.int16), ras), str(ct))
    out = tmp_path / "bench.json"
    call_command(
        "bench_drr",
        "--ct",
        str(ct),
        "--sizes",
        "16",
        "24",
        "--repeat",
        "1",
        "--device",
        "cpu",
        "--json",
        str(out),
    )
    printed = capsys.readouterr().out
    assert "nanodrr ms" in printed and "wrote" in printed
    data = json.loads(out.read_text())
    assert [r["size"] for r in data["results"]] == [16, 24]
    for row in data["results"]:
        assert row["ours_ms"] > 0 and row["ours_rays_ms"] > 0
        assert row["ncc_ours_vs_ours_rays"] > 0.99
        if "nanodrr_ms" in row:
            assert row["ncc_ours_vs_nanodrr"] > 0.99
            assert row["ratio_nanodrr_over_ours"] == pytest.approx(
                row["nanodrr_ms"] / row["ours_ms"]
            )
        assert row["quality_vs_rays1024"]["ours"]["ncc"] > 0.99
        assert row["quality_vs_rays1024"]["ours_exact"]["ncc"] > 0.99


def test_bench_drr_refuses_bad_options(tmp_path):
    with pytest.raises(CommandError, match="CT not found"):
        call_command(
            "bench_drr", "--ct", str(tmp_path / "none.nii"), "--json", str(tmp_path / "b.json")
        )
    with pytest.raises(CommandError, match="repeat"):
        call_command("bench_drr", "--repeat", "0", "--json", str(tmp_path / "b.json"))
    assert not (tmp_path / "b.json").exists()
