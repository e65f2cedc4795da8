"""The report of ``bench_calibration``: the goals of the clip-on phantom family, its metric
statistics with pass verdicts, and the printed table of all families (see README)."""

from __future__ import annotations

from calibration.bench.stats import fmt, stats

# JSON metric key -> (table label, goal, statistic the goal is on)
GOALS = {
    "holdout_rms_mm": ("hold-out residual RMS after dewarp (mm)", 0.10, "mean"),
    "holdout_max_mm": ("hold-out residual max after dewarp (mm)", 0.25, "max"),
    "opencv_holdout_rms_mm": ("OpenCV rational+thin-prism hold-out RMS (mm)", None, None),
    "opencv_holdout_max_mm": ("OpenCV rational+thin-prism hold-out max (mm)", None, None),
    "engine_selfconsistent_rms_mm": ("engine hold-out RMS vs own model (mm)", None, None),
    "source_lateral_mm": ("source lateral error (mm)", 0.5, "max"),
    "source_axial_mm": ("source axial error (mm)", 5.0, "max"),
    "triangulation_mm": ("two-view triangulation error, 90 deg, 1 px picks (mm)", 0.7, "mean"),
    "triangulation_p95_mm": ("  (95th percentile goal)", 1.2, "p95"),
    "detection_rms_px": ("image bead detection error RMS (px, before +0.1 px)", None, None),
    "calibration_s": ("time per calibration, wall clock (s)", 2.0, "mean"),
    "calibration_cpu_s": ("time per calibration, process CPU (s)", None, None),
    "dewarp_ms": ("time per dewarp of a 1024^2 image, cached maps, wall (ms)", 20.0, "mean"),
    "dewarp_cpu_ms": ("time per dewarp, process CPU (ms)", None, None),
}
HEADER = f"{'metric':58s} {'mean':>8s} {'p95':>8s} {'max':>8s}  goal"
PLATE_LABELS = {
    "raw_rms_px": ("raw frame: markers off a perfect lattice, RMS (px)", False),
    "dewarped_rms_px": ("dewarped image: markers off a perfect lattice, RMS (px)", True),
    "dewarped_max_px": ("dewarped image: largest marker deviation (px)", False),
    "model_true_rms_px": ("model on true marker centres, RMS (px)", False),
    "calibration_s": ("time per plate calibration, wall clock (s)", False),
    "markers_used": ("markers used per frame", False),
}
LAYOUT_LABELS = {
    "dewarp_rms_mm": "true dewarp error over the phantom, RMS (mm)",
    "dewarp_max_mm": "true dewarp error over the phantom, max (mm)",
    "source_lateral_mm": "source lateral error (mm)",
    "source_axial_mm": "source axial error (mm)",
    "seconds": "time per calibration, wall clock (s)",
}


def clipon_metrics(rows: list[dict], tri_err: list[float], dewarp_ms: list[float],
                   dewarp_cpu_ms: list[float]) -> dict:  # fmt: skip
    """Statistics of every :data:`GOALS` metric with its goal, the statistic it is on and
    the verdict (``pass`` None where there is no goal)."""
    metrics = {k: stats([r.get(k) for r in rows]) for k in GOALS if k in rows[0]}
    metrics["triangulation_mm"] = stats(tri_err)
    metrics["triangulation_p95_mm"] = stats(tri_err)
    metrics["dewarp_ms"] = stats(dewarp_ms)
    metrics["dewarp_cpu_ms"] = stats(dewarp_cpu_ms)
    for key, (_, goal, stat) in GOALS.items():
        if key in metrics:
            metrics[key]["goal"] = goal
            metrics[key]["goal_on"] = stat
            val = metrics[key].get(stat) if stat else None
            metrics[key]["pass"] = (val <= goal) if (goal is not None and val is not None) else None
    return metrics


def _row(label: str, m: dict, goal_text: str) -> str:
    return f"{label:58s} {fmt(m['mean'], 8)} {fmt(m['p95'], 8)} {fmt(m['max'], 8)}  {goal_text}"


def _clipon_lines(s: dict) -> list[str]:
    out = [
        "",
        f"C-arm calibration benchmark: {s['cases_calibrated']}/{s['cases']} cases, "
        f"{s['image_size_px']}^2 px at {s['pixel_spacing_mm']} mm, "
        f"+{s['extra_detection_noise_px']} px detection noise",
        HEADER,
    ]
    for key, (label, goal, stat) in GOALS.items():
        m = s["metrics"].get(key)
        if not m or m["n"] == 0:
            continue
        g = f"{stat} <= {goal}" if goal is not None else ""
        verdict = {True: "PASS", False: "FAIL", None: ""}[m.get("pass")]
        out.append(_row(label, m, f"{g} {verdict}"))
    out.append(f"{'success with 30% beads hidden (+ spurious, rotated/flipped)':58s} "
               f"{s['success_rate_30pct_hidden']:8.0%}")  # fmt: skip
    out.append(f"{'success with anatomy over the phantom':58s} {s['success_rate_anatomy']:8.0%}"
               f"   ({s['anatomy_source']})")  # fmt: skip
    out.append(f"dewarp map build (once per profile and size): {s['dewarp_map_build_s']:.3f} s")
    return out


def _plate_lines(p: dict) -> list[str]:
    out = [
        "",
        f"Dewarping grid plates: {p['calibrated']}/{p['cases']} frames calibrated, "
        f"{p['image_size_px']}^2 px, markers within 80 % of the field radius",
        HEADER,
    ]
    for key, (label, has_goal) in PLATE_LABELS.items():
        m = p["metrics"].get(key)
        if not m or m["n"] == 0:
            continue
        goal = p["goal_dewarped_rms_px"] if has_goal else None
        g = f"max <= {goal} {'PASS' if p['pass'] else 'FAIL'}" if goal else ""
        out.append(_row(label, m, g))
    out.append(f"{'markers cut by the field edge used / spurious used':58s} "
               f"{p['used_edge_markers_total']:>8d} / {p['used_not_a_marker_total']}")  # fmt: skip
    return out


def _layout_lines(lay: dict) -> list[str]:
    passes = lay["pass"]
    out = [
        "",
        f"Random two-layer layouts never seen before: {lay['calibrated']}/{lay['cases']} "
        f"calibrated ({lay['calibrated_fraction']:.0%}, goal >= 98% "
        f"{'PASS' if passes['calibrated_fraction'] else 'FAIL'}), wrong "
        f"identifications passing: {lay['wrong_identifications_passing']} "
        f"{'PASS' if passes['wrong_identifications_passing'] else 'FAIL'}",
        HEADER,
    ]
    for key, label in LAYOUT_LABELS.items():
        m = lay["metrics"][key]
        if m["n"] == 0:
            continue
        goal = lay["goals_on_max"].get(key)
        g = f"max <= {goal} {'PASS' if passes[key] else 'FAIL'}" if goal else ""
        out.append(_row(label, m, g))
    return out


def table_lines(s: dict) -> list[str]:
    """The printed table of a ``bench_calibration`` summary, one string per line."""
    out = _clipon_lines(s)
    if s.get("plate"):
        out += _plate_lines(s["plate"])
    if s.get("layouts"):
        out += _layout_lines(s["layouts"])
    out.append(
        f"machine: {s['cpu_count']} CPUs, 1-min load average {s['load_average_1min_at_end']:.1f} "
        "(wall-clock times are inflated when the machine is shared)"
    )
    return out
