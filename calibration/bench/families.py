"""The dewarping-plate and random-layout families of ``bench_calibration``: run the cases
(:func:`calibration.bench.plates.plate_case`, :func:`calibration.bench.layouts.layout_case`),
log a line per case and summarise them (the JSON keys ``plate`` and ``layouts``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from calibration.bench.layouts import layout_case
from calibration.bench.plates import PLATE_GOAL_PX, plate_case
from calibration.bench.stats import fmt, stats

PLATE_KEYS = (
    "raw_rms_px", "raw_true_rms_px", "dewarped_rms_px", "dewarped_max_px",
    "model_true_rms_px", "calibration_s", "calibration_cpu_s", "markers_in_field",
    "markers_used",
)  # fmt: skip
LAYOUT_KEYS = ("dewarp_rms_mm", "dewarp_max_mm", "source_lateral_mm", "source_axial_mm", "seconds")
LAYOUT_GOALS_ON_MAX = {
    "calibrated_fraction": 0.98,
    "dewarp_rms_mm": 0.05,
    "dewarp_max_mm": 0.15,
    "source_lateral_mm": 0.3,
    "source_axial_mm": 3.0,
}


def _plate_line(c: int, row: dict) -> str:
    if not row["ok"]:
        return f"plate {c}: calibration FAILED: {row['error']}"
    return (
        f"plate {c:2d} ({row['lattice']} {row['marker']}s, {row['field']} field, "
        f"{row['markers_in_field']} markers): raw {row['raw_rms_px']:.3f} px -> dewarped "
        f"{fmt(row.get('dewarped_rms_px'))} px RMS (max {fmt(row.get('dewarped_max_px'))}), "
        f"order {row['order']}, {row['calibration_s']:.2f} s"
    )


def plate_family(n: int, size: int, seed: int, log: Callable[[str], object]) -> dict:
    """``n`` dewarping-plate frames of ``size``^2 px (seeds ``seed + 5000 + case``): per-case
    rows, statistics and the pass verdict on the dewarped RMS (px)."""
    rows = []
    for c in range(n):
        row = plate_case(c, seed + 5000 + c, size)
        rows.append(row)
        log(_plate_line(c, row))
    ok = [r for r in rows if r["ok"]]
    metrics = {k: stats([r.get(k) for r in ok]) for k in PLATE_KEYS}
    worst = metrics["dewarped_rms_px"]["max"]
    return {
        "cases": n,
        "calibrated": len(ok),
        "image_size_px": size,
        "central_fraction_of_field_radius": 0.8,
        "goal_dewarped_rms_px": PLATE_GOAL_PX,
        "pass": bool(len(ok) == n and worst is not None and worst <= PLATE_GOAL_PX),
        "used_edge_markers_total": int(sum(r.get("used_edge_markers", 0) for r in ok)),
        "used_not_a_marker_total": int(sum(r.get("used_not_a_marker", 0) for r in ok)),
        "metrics": metrics,
        "per_case": rows,
    }


def _layout_line(c: int, row: dict) -> str:
    what = (
        f"{row['layout']}/{row['coding']}, far {row['far_layout']}, "
        f"{row['hidden_fraction']:.0%} hidden{', anatomy' if row['anatomy'] else ''}"
    )
    if not row["ok"]:
        return f"layout {c:2d} ({what}): REFUSED: {row['error']}"
    return (
        f"layout {c:2d} ({what}): dewarp {row['dewarp_rms_mm']:.3f} / "
        f"{row['dewarp_max_mm']:.3f} mm, source lat {row['source_lateral_mm']:.2f} ax "
        f"{row['source_axial_mm']:.2f} mm, {row['wrong_ids']} wrong ids, "
        f"{row['seconds']:.1f} s"
    )


def layout_family(n: int, size: int, seed: int, anatomies: Sequence[np.ndarray],
                  anatomy_source: str, log: Callable[[str], object]) -> dict:  # fmt: skip
    """``n`` random two-layer layouts, one frame each (seeds ``seed + 7000 + case``, anatomy
    in turn from ``anatomies``): per-case rows, statistics and pass verdicts on the maxima."""
    rows = []
    for c in range(n):
        row = layout_case(c, seed + 7000 + c, size=size, anatomy=anatomies[c % len(anatomies)])
        rows.append(row)
        log(_layout_line(c, row))
    ok = [r for r in rows if r["ok"]]
    metrics = {k: stats([r.get(k) for r in ok]) for k in LAYOUT_KEYS}
    goals = dict(LAYOUT_GOALS_ON_MAX)
    wrong = sum(1 for r in ok if r.get("wrong_ids", 0) > 0)
    frac = len(ok) / n
    passes = {
        "calibrated_fraction": frac >= goals["calibrated_fraction"],
        "wrong_identifications_passing": wrong == 0,
    }
    for k in ("dewarp_rms_mm", "dewarp_max_mm", "source_lateral_mm", "source_axial_mm"):
        mx = metrics[k]["max"]
        passes[k] = mx is not None and mx <= goals[k]
    return {
        "cases": n,
        "calibrated": len(ok),
        "calibrated_fraction": frac,
        "wrong_identifications_passing": wrong,
        "image_size_px": size,
        "anatomy_source": anatomy_source,
        "goals_on_max": goals,
        "pass": passes,
        "metrics": metrics,
        "per_case": rows,
    }
