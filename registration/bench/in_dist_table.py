"""The printed table of the in-distribution benchmark of ``bench_registration``: per CT and
mode the mTRE statistics (mm), then where refinement started, the self-check outcome, the
error parts and the seconds per image."""

from __future__ import annotations

from registration.bench.in_dist_run import fmt

HEADER = (f"{'CT':28s} {'mode':12s} {'n':>3s} {'median':>7s} {'mean':>7s} {'p95':>7s} "
          f"{'<1mm':>5s} {'<2':>5s} {'<5':>5s} {'<10':>5s} {'best-half':>13s} {'fail>10':>7s} "
          f"{'mPD':>6s}")  # fmt: skip


def _mode_line(c: dict, mode: str, s: dict) -> str:
    sh = s["share_under_mm"]
    bh = f"{fmt(s['best_half_mean_mm'])}±{fmt(s['best_half_sd_mm'])}"
    return (
        f"{c['name'][:28]:28s} {mode:12s} {s['n']:3d} {fmt(s['median_mm']):>7s} "
        f"{fmt(s['mean_mm_of_registered']):>7s} {fmt(s['p95_mm']):>7s} {sh['1']:5.0%} "
        f"{sh['2']:5.0%} {sh['5']:5.0%} {sh['10']:5.0%} {bh:>13s} "
        f"{s['failure_rate_over_10mm']:7.0%} "
        f"{fmt(c['projected_distance_mm'][mode]['median']):>6s}"
    )


def _ct_notes(c: dict) -> list[str]:
    out = []
    if c.get("refined_from_counts"):
        out.append("  refinement started from: " + ", ".join(
            f"{k} {v}" for k, v in sorted(c["refined_from_counts"].items())))  # fmt: skip
    for mode, cf in c.get("self_check_confusion", {}).items():
        out.append(f"  self-check {mode}: " + ", ".join(f"{k} {v}" for k, v in cf.items()))
    for key, label in (("pnp_error_parts", "network + PnP"),
                       ("error_parts", "refined (incl. rejected)")):  # fmt: skip
        m = c.get("error_parts_median_abs", {}).get(key)
        if m:
            out.append(f"  bone-centre error, {label} (median |.|): depth {m['depth_mm']:.2f} mm, "
                       f"sideways {m['sideways_mm']:.2f} mm, rotation {m['rotation_deg']:.2f} deg")
    sec = c["seconds_per_image"]
    out.append("  seconds/image (mean): " + ", ".join(f"{k} {v['mean']:.3f}" for k, v in sec.items()))
    return out


def table_lines(report: dict) -> list[str]:
    """The table of an in-distribution report (its ``cts``), one string per line."""
    out = ["", HEADER]
    for c in report["cts"]:
        out += [_mode_line(c, mode, s) for mode, s in c["summary"].items()]
        out += _ct_notes(c)
    return out
