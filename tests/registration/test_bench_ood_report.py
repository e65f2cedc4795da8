"""The OOD report counts wrong poses accepted, refusals and failures per kind by hand."""

from __future__ import annotations

import pytest

from registration.bench.report import report, side_by_side, summarise, table_lines


def _row(kind, status, mtre, *, header=False, ct="a", rejected=None, total=2.0):
    return {"kind": kind, "status": status, "mtre_mm": mtre if status == "ok" else None,
            "mtre_of_rejected_mm": rejected, "header_angles": header, "display": "log",
            "mode": "model", "ct": ct, "seconds": {"total": total, "network": 0.1}}


ROWS = [
    _row("ap", "ok", 0.5), _row("ap", "ok", 1.5), _row("ap", "ok", 12.0),  # wrong, accepted
    _row("lateral", "ok", 7.0, header=True),  # 5-10 mm accepted
    _row("lateral", "failed", None, rejected=3.0, header=True),  # refused a good pose
    _row("closeup", "failed", None, ct="b"), _row("closeup", "ok", 30.0, ct="b"),
    _row("closeup", "ok", 0.8, ct="b", total=4.0),
]


def test_counts_by_hand():
    s = summarise(ROWS)
    assert s["n"] == 8
    assert s["wrong_accepted_over_10mm"] == 2
    assert s["wrong_accepted_5_to_10mm"] == 1
    assert s["refused"] == 2 and s["refused_but_within_10mm"] == 1
    assert s["failures_over_10mm_or_refused"] == 4
    # sorted: 0.5 0.8 1.5 7 12 30 inf inf -> median (7 + 12) / 2, best half mean of 4
    assert s["median_mm"] == pytest.approx(9.5)
    assert s["best_half_mean_mm"] == pytest.approx((0.5 + 0.8 + 1.5 + 7.0) / 4)
    assert s["share_under_mm"] == {"1": 2 / 8, "2": 3 / 8, "5": 3 / 8, "10": 4 / 8}
    assert s["mean_mm_of_accepted"] == pytest.approx((0.5 + 1.5 + 12 + 7 + 30 + 0.8) / 6)
    assert s["p95_mm"] is None  # the 95th percentile is a refusal
    assert s["seconds_median"] == {"network": 0.1, "total": 2.0}


def test_groups_per_kind_header_and_ct():
    rep = report(ROWS)["model"]
    allg = rep["all_cts"]
    assert allg["ap"]["wrong_accepted_over_10mm"] == 1
    assert allg["closeup"]["wrong_accepted_over_10mm"] == 1 and allg["closeup"]["refused"] == 1
    assert allg["lateral"]["wrong_accepted_5_to_10mm"] == 1
    assert allg["header_angles"]["n"] == 2 and allg["no_header_angles"]["n"] == 6
    assert "oblique" not in allg
    assert set(rep["per_ct"]) == {"a", "b"}
    assert rep["per_ct"]["b"]["all"]["n"] == 3
    assert rep["per_ct"]["a"]["all"]["wrong_accepted_over_10mm"] == 1
    lines = table_lines(report(ROWS))
    assert any(" closeup " in ln for ln in lines)


def test_side_by_side_shows_both():
    lines = side_by_side({"median_mm": 0.32, "share_under_mm": {"2": 1.0, "10": 1.0},
                          "failure_rate_over_10mm": 0.0, "p95_mm": 1.1}, report(ROWS))
    assert "0.32" in lines[1] and "9.50" in lines[1]
    assert lines[-1].split()[-2:] == ["0.00", "0.50"]
