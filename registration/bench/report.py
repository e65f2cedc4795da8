"""The out-of-distribution benchmark's figures: per mode, per kind and per CT.

A row is one registration (see :func:`registration.bench.ood_run.register_shot`):
``status`` ("ok" | "failed"), ``mtre_mm`` (the returned pose's 3-D mTRE in mm, None when
refused), ``kind``, ``header_angles``, ``seconds`` per stage. A refusal counts as a
failure at infinite error in the order statistics.
"""

from __future__ import annotations

import math

import numpy as np

THRESHOLDS_MM = (1, 2, 5, 10)


def summarise(rows: list[dict]) -> dict:
    """median / mean / p95 (mm), share under 1/2/5/10 mm, best half, failures > 10 mm or
    refused, wrong poses accepted (ok but > 10 mm; ok at 5-10 mm), refusals, and the median
    seconds per image of every stage."""
    n = len(rows)
    if n == 0:
        return {"n": 0}
    ok = [r for r in rows if r["status"] == "ok" and r.get("mtre_mm") is not None]
    e = np.array([r["mtre_mm"] if r in ok else math.inf for r in rows], np.float64)
    srt = np.sort(e)
    half = srt[: max(1, n // 2)]
    half = half[np.isfinite(half)]

    def fin(v) -> float | None:
        return float(v) if math.isfinite(v) else None

    stages: dict[str, list[float]] = {}
    for r in rows:
        for k, v in r.get("seconds", {}).items():
            stages.setdefault(k, []).append(float(v))
    return {
        "n": n,
        "median_mm": fin(np.median(srt)) if n % 2 else fin(0.5 * (srt[n // 2 - 1] + srt[n // 2])),
        "mean_mm_of_accepted": float(np.mean(e[np.isfinite(e)])) if np.isfinite(e).any() else None,
        "p95_mm": fin(np.percentile(srt, 95, method="higher")),
        "share_under_mm": {str(t): float(np.mean(e < t)) for t in THRESHOLDS_MM},
        "best_half_mean_mm": float(np.mean(half)) if len(half) else None,
        "failures_over_10mm_or_refused": int(np.sum(~(e <= 10.0))),
        "wrong_accepted_over_10mm": sum(1 for r in ok if r["mtre_mm"] > 10.0),
        "wrong_accepted_5_to_10mm": sum(1 for r in ok if 5.0 < r["mtre_mm"] <= 10.0),
        "refused": sum(1 for r in rows if r["status"] != "ok"),
        "refused_but_within_10mm": sum(
            1 for r in rows if r["status"] != "ok" and r.get("mtre_of_rejected_mm") is not None
            and r["mtre_of_rejected_mm"] <= 10.0),
        "seconds_median": {k: float(np.median(v)) for k, v in sorted(stages.items())},
    }


def groups(rows: list[dict]) -> dict[str, list[dict]]:
    """The report's groups: all, each kind (ap / oblique / lateral / closeup), with and
    without header angles, each stored form."""
    out: dict[str, list[dict]] = {"all": list(rows)}
    for key in ("ap", "oblique", "lateral", "closeup"):
        out[key] = [r for r in rows if r["kind"] == key]
    out["header_angles"] = [r for r in rows if r["header_angles"]]
    out["no_header_angles"] = [r for r in rows if not r["header_angles"]]
    for d in ("linear", "log", "mono1", "gamma"):
        out[f"display_{d}"] = [r for r in rows if r.get("display") == d]
    return {k: v for k, v in out.items() if v}


def report(rows: list[dict]) -> dict:
    """{mode: {"all_cts": {group: summary}, "per_ct": {ct: {group: summary}}}}."""
    out: dict = {}
    for mode in dict.fromkeys(r["mode"] for r in rows):
        mrows = [r for r in rows if r["mode"] == mode]
        out[mode] = {"all_cts": {g: summarise(v) for g, v in groups(mrows).items()},
                     "per_ct": {}}
        for ct in dict.fromkeys(r["ct"] for r in mrows):
            crows = [r for r in mrows if r["ct"] == ct]
            out[mode]["per_ct"][ct] = {g: summarise(v) for g, v in groups(crows).items()}
    return out


def _f(x) -> str:
    return "-" if x is None else f"{x:.2f}"


HEADER = (f"{'mode':14s} {'CT':22s} {'group':16s} {'n':>3s} {'median':>7s} {'mean':>7s} "
          f"{'p95':>7s} {'<1':>4s} {'<2':>4s} {'<5':>4s} {'<10':>4s} {'best½':>6s} "
          f"{'fail':>4s} {'ok>10':>5s} {'ok5-10':>6s} {'refus':>5s} {'s/img':>6s}")


def table_lines(rep: dict) -> list[str]:
    """Fixed-width lines of :func:`report`'s output ("fail": > 10 mm or refused)."""
    lines = [HEADER]
    for mode, m in rep.items():
        blocks = [("all CTs", m["all_cts"])] + list(m["per_ct"].items())
        for ct, gs in blocks:
            for g, s in gs.items():
                if ct != "all CTs" and g.startswith("display_"):
                    continue
                sh = s["share_under_mm"]
                lines.append(
                    f"{mode[:14]:14s} {ct[:22]:22s} {g[:16]:16s} {s['n']:3d} "
                    f"{_f(s['median_mm']):>7s} {_f(s['mean_mm_of_accepted']):>7s} "
                    f"{_f(s['p95_mm']):>7s} {sh['1']:4.0%} {sh['2']:4.0%} {sh['5']:4.0%} "
                    f"{sh['10']:4.0%} {_f(s['best_half_mean_mm']):>6s} "
                    f"{s['failures_over_10mm_or_refused']:4d} {s['wrong_accepted_over_10mm']:5d} "
                    f"{s['wrong_accepted_5_to_10mm']:6d} {s['refused']:5d} "
                    f"{s['seconds_median'].get('total', float('nan')):6.2f}")
        stage = m["all_cts"]["all"]["seconds_median"]
        lines.append(f"  {mode} seconds per image (median): " + ", ".join(
            f"{k} {v:.3f}" for k, v in stage.items()))
    return lines


def side_by_side(in_dist: dict, ood: dict) -> list[str]:
    """Two columns per figure: the in-distribution benchmark's pooled refined figures and
    the OOD benchmark's (its ``model`` mode, else its first) over all CTs."""
    mode = "model" if "model" in ood else next(iter(ood), None)
    o = ood[mode]["all_cts"]["all"] if mode else {}
    i = in_dist or {}
    rows = [("median mm", i.get("median_mm"), o.get("median_mm")),
            ("p95 mm", i.get("p95_mm"), o.get("p95_mm")),
            ("share < 2 mm", i.get("share_under_mm", {}).get("2"), o.get("share_under_mm", {}).get("2")),
            ("share < 10 mm", i.get("share_under_mm", {}).get("10"), o.get("share_under_mm", {}).get("10")),
            ("failure rate", i.get("failure_rate_over_10mm"),
             (o["failures_over_10mm_or_refused"] / o["n"]) if o.get("n") else None)]
    out = [f"{'':16s} {'in-distribution':>16s} {'OOD (' + str(mode) + ')':>22s}"]
    out += [f"{k:16s} {_f(a):>16s} {_f(b):>22s}" for k, a, b in rows]
    return out
