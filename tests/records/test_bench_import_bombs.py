"""``manage.py bench_import_bombs`` imports each bomb in a fresh process, prints a table of
refusals with their peak memory and writes the rows as JSON."""

from __future__ import annotations

import json
import re

import pytest
from django.core.management import CommandError, call_command

from webapp.records.bomb_check import BOMBS


def test_the_bench_refuses_the_chosen_bombs_and_writes_json(tmp_path, capsys):
    out = tmp_path / "bombs.json"
    names = ["zip_1000_members", "deflated_dicom_xray", "nifti_2e30_voxels"]
    call_command("bench_import_bombs", *[f"--only={n}" for n in names], "--json", str(out))
    printed = capsys.readouterr().out
    report = json.loads(out.read_text())
    rows = {row["bomb"]: row for row in report["bombs"]}
    assert list(rows) == names and report["peak_limit_mib"] == pytest.approx(476.8, abs=0.1)
    for name, row in rows.items():
        assert row["refused"] and row["ok"], row
        assert 0 <= row["peak_rss_mib"] < 100 and row["tracemalloc_peak_mib"] < 100, row
        assert 1e6 < row["size_bytes"] < 2.3e6 and row["seconds"] >= 0
        assert re.search(rf"^{name}\s+\d\.\d\dMB\s+yes\s+\d+\.\dMiB", printed, re.M), printed
        assert row["message"] in printed
    assert rows["zip_1000_members"]["message"].startswith("the zip archive 'many.zip' expands to")
    assert rows["deflated_dicom_xray"]["message"].startswith(
        "'deflated.dcm': the deflated dataset expands to more than"
    )
    assert "voxels need about 10.0 GiB" in rows["nifti_2e30_voxels"]["message"]
    assert "3 of 3 bombs refused" in printed


def test_every_bomb_has_a_unique_name_and_an_upload_form():
    assert len({item.name for item in BOMBS}) == len(BOMBS) >= 10
    assert {item.kind for item in BOMBS} == {"ct", "xray"}


def test_an_unknown_bomb_is_refused_by_name():
    with pytest.raises(CommandError, match="invalid choice: 'nope'"):
        call_command("bench_import_bombs", "--only", "nope")
