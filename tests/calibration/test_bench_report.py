"""bench_calibration's report: statistics, goal verdicts and the printed table."""

from __future__ import annotations

import math

import pytest

from calibration.bench.report import GOALS, HEADER, clipon_metrics, table_lines
from calibration.bench.stats import fmt, stats


def _row(holdout_rms: float, **extra) -> dict:
    row = {k: 0.01 for k in GOALS if k not in ("triangulation_mm", "triangulation_p95_mm",
                                                "dewarp_ms", "dewarp_cpu_ms")}
    row.update(holdout_rms_mm=holdout_rms, hidden_ok=True, anatomy_ok=False, **extra)
    return row


def _summary(metrics: dict, **families) -> dict:
    return {
        "cases": 3, "cases_calibrated": 2, "image_size_px": 512, "pixel_spacing_mm": 0.5,
        "extra_detection_noise_px": 0.1, "success_rate_30pct_hidden": 1.0,
        "success_rate_anatomy": 0.5, "anatomy_source": "synthetic anatomy (fallback)",
        "dewarp_map_build_s": 0.05, "load_average_1min_at_end": 2.0, "cpu_count": 4,
        "metrics": metrics, **families,
    }


def test_stats_ignore_missing_and_non_finite_values() -> None:
    s = stats([1.0, None, 3.0, math.nan, math.inf, 2.0])
    assert s["n"] == 3
    assert s["mean"] == pytest.approx(2.0, abs=1e-12)
    assert s["max"] == pytest.approx(3.0, abs=1e-12)
    assert s["p95"] == pytest.approx(2.9, abs=1e-12)
    assert stats([None, math.nan]) == {"n": 0, "mean": None, "p95": None, "max": None}
    assert fmt(None, 8) == "     n/a" and fmt(0.12345, 8) == "   0.123"


def test_goal_verdicts_follow_the_statistic_they_are_on() -> None:
    rows = [_row(0.05), _row(0.20)]  # mean 0.125 > 0.10: fails the mean goal
    m = clipon_metrics(rows, [0.5, 0.6], [1.0, 2.0], [1.0, 1.0])
    assert m["holdout_rms_mm"]["pass"] is False and m["holdout_rms_mm"]["goal_on"] == "mean"
    assert m["source_lateral_mm"]["pass"] is True
    assert m["opencv_holdout_rms_mm"]["pass"] is None  # no goal
    assert m["triangulation_mm"]["n"] == 2 and m["dewarp_ms"]["mean"] == pytest.approx(1.5)
    assert clipon_metrics([_row(0.05), _row(0.06)], [0.5], [1.0], [1.0])[
        "holdout_rms_mm"]["pass"] is True


def test_table_prints_every_measured_metric_with_its_verdict() -> None:
    m = clipon_metrics([_row(0.05), _row(0.20)], [0.5, 0.6], [1.0, 2.0], [1.0, 1.0])
    lines = table_lines(_summary(m))
    assert lines[0] == "" and lines[2] == HEADER
    assert "C-arm calibration benchmark: 2/3 cases, 512^2 px at 0.5 mm" in lines[1]
    rms = next(x for x in lines if x.startswith(GOALS["holdout_rms_mm"][0]))
    assert rms.endswith("mean <= 0.1 FAIL")
    lat = next(x for x in lines if x.startswith(GOALS["source_lateral_mm"][0]))
    assert lat.endswith("max <= 0.5 PASS")
    assert any("success with anatomy over the phantom" in x and "50%" in x for x in lines)
    assert not any(x.startswith("Dewarping grid plates") for x in lines)
    assert lines[-1].startswith("machine: 4 CPUs, 1-min load average 2.0")


def test_table_adds_the_plate_and_layout_families_when_run() -> None:
    m = clipon_metrics([_row(0.05), _row(0.06)], [0.5], [1.0], [1.0])
    plate_m = {k: stats([0.1, 0.3]) for k in ("raw_rms_px", "dewarped_rms_px")}
    plate = {"calibrated": 2, "cases": 2, "image_size_px": 512, "goal_dewarped_rms_px": 0.25,
             "pass": False, "used_edge_markers_total": 1, "used_not_a_marker_total": 0,
             "metrics": plate_m}
    lay_m = {k: stats([]) for k in ("dewarp_rms_mm", "dewarp_max_mm", "source_lateral_mm",
                                    "source_axial_mm", "seconds")}
    lay_m["dewarp_rms_mm"] = stats([0.01, 0.02])
    lay = {"calibrated": 1, "cases": 2, "calibrated_fraction": 0.5,
           "wrong_identifications_passing": 0, "goals_on_max": {"dewarp_rms_mm": 0.05},
           "pass": {"calibrated_fraction": False, "wrong_identifications_passing": True,
                    "dewarp_rms_mm": True}, "metrics": lay_m}
    lines = table_lines(_summary(m, plate=plate, layouts=lay))
    assert any(x.startswith("Dewarping grid plates: 2/2 frames calibrated") for x in lines)
    dew = next(x for x in lines if x.startswith("dewarped image: markers off"))
    assert dew.endswith("max <= 0.25 FAIL")
    head = next(x for x in lines if x.startswith("Random two-layer layouts"))
    assert "1/2 calibrated (50%, goal >= 98% FAIL)" in head and head.endswith("0 PASS")
    assert any(x.startswith("true dewarp error over the phantom, RMS") and x.endswith("PASS")
               for x in lines)
    # a layout metric without any calibrated case is left out of the table
    assert not any(x.startswith("true dewarp error over the phantom, max") for x in lines)
