"""The whole ``bench_calibration`` run: the clip-on phantom family, then the plate and
layout families, as one summary dict (the JSON the command writes; see README)."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from calibration.bench.anatomy import pelvis_anatomy
from calibration.bench.clipon import clipon_case
from calibration.bench.families import layout_family, plate_family
from calibration.bench.report import clipon_metrics
from calibration.bench.twoview_timing import dewarp_timing, triangulation_errors
from calibration.engine.phantom import builtin_phantom
from refusal import Refused


class BenchRefused(Refused):
    """The benchmark cannot report (too few cases calibrated)."""


@dataclass(frozen=True)
class BenchSettings:
    """What to run: ``cases`` clip-on frames of ``size``^2 px (0.25 mm at 1024 px),
    ``noise_px`` extra detection noise, seeds from ``seed``; ``plate_cases`` and
    ``layout_cases`` frames of the other families (0 skips one); ``ct_dir`` the folder of
    the shared CTs (the pelvis DRR anatomy), None for synthetic anatomy."""

    cases: int
    size: int
    seed: int
    noise_px: float
    plate_cases: int
    layout_cases: int
    ct_dir: Path | None = None


def run_clipon(st: BenchSettings, anatomies, anatomy_source: str,
               log: Callable[[str], object]) -> dict:  # fmt: skip
    """The clip-on family's part of the summary (everything but ``plate`` and ``layouts``).
    Raises :class:`BenchRefused` when fewer than two cases calibrate."""
    phantom = builtin_phantom("clipon_two_layer")
    spacing = 0.25 * 1024 / st.size
    cases = [
        clipon_case(c, st.seed + c, phantom, st.size, st.noise_px,
                    anatomies[c % len(anatomies)], log)  # fmt: skip
        for c in range(st.cases)
    ]
    good = [c for c in cases if "res" in c]
    if len(good) < 2:
        raise BenchRefused("fewer than two cases calibrated; no statistics")
    rows = [c["row"] for c in good]
    tri_err = triangulation_errors(good, spacing, np.random.default_rng(st.seed + 777))
    dewarp_ms, dewarp_cpu_ms, maps_s = dewarp_timing(good[0]["res"].profile, st.size)
    n_done = len(rows)
    return {
        "cases": st.cases,
        "cases_calibrated": n_done,
        "image_size_px": st.size,
        "pixel_spacing_mm": spacing,
        "extra_detection_noise_px": st.noise_px,
        "success_rate_30pct_hidden": sum(r["hidden_ok"] for r in rows) / n_done,
        "success_rate_anatomy": sum(r["anatomy_ok"] for r in rows) / n_done,
        "anatomy_source": anatomy_source,
        "dewarp_map_build_s": maps_s,
        "load_average_1min_at_end": os.getloadavg()[0],
        "cpu_count": os.cpu_count(),
        "metrics": clipon_metrics(rows, tri_err, dewarp_ms, dewarp_cpu_ms),
        "per_case": rows,
    }


def run_bench(st: BenchSettings, log: Callable[[str], object]) -> dict:
    """Every family, logging a line per case; the summary of README's ``bench_calibration``."""
    anatomies, anatomy_source = pelvis_anatomy(st.size, log, ct_dir=st.ct_dir)
    log(f"anatomy over the phantom: {anatomy_source}")
    summary = run_clipon(st, anatomies, anatomy_source, log)
    if st.plate_cases > 0:
        summary["plate"] = plate_family(st.plate_cases, st.size, st.seed, log)
    if st.layout_cases > 0:
        summary["layouts"] = layout_family(
            st.layout_cases, st.size, st.seed, anatomies, anatomy_source, log
        )
    return summary
