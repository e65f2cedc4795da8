"""bench_registration's in-distribution run settings and printed table."""

from __future__ import annotations

import math

from registration.bench.in_dist_run import InDistSettings, fmt
from registration.bench.in_dist_table import HEADER, table_lines
from simulation.heldout import summarise

OPTS = {"n_images": None, "seed": 7, "closeup_share": 0.3, "fixed_dose": False,
        "no_header_start": False, "skip_refine_only": False, "network_only": False,
        "frozen_depth": False, "no_search": False, "box_pivot": False,
        "no_profile_search": False, "no_pnp_polish": False, "restarts": None}


def test_settings_from_options_and_the_registration_options() -> None:
    st = InDistSettings.from_options(OPTS)
    assert st.n_images == 20 and st.runs_refine_only
    assert st.registration_options("cpu") == {
        "device": "cpu", "optimise_depth": True, "search": True, "view_pivot": True,
        "profile_search": True, "pnp_polish": True}
    net = InDistSettings.from_options({**OPTS, "n_images": 3, "network_only": True,
                                       "frozen_depth": True, "restarts": 0})
    assert net.n_images == 3 and not net.runs_refine_only
    ro = net.registration_options("cuda")
    assert ro["refine"] is False and ro["n_restarts"] == 0 and ro["optimise_depth"] is False


def test_table_has_a_line_per_mode_and_the_ct_notes() -> None:
    errors = {"no_refine": [0.5, 3.0, math.inf], "refine": [0.4, 1.5, 2.5]}
    ct = {
        "name": "pelvis_bone_001",
        "summary": {m: summarise(v) for m, v in errors.items()},
        "projected_distance_mm": {"no_refine": {"median": 1.25}, "refine": {"median": None}},
        "refined_from_counts": {"pnp": 2, "header": 1},
        "self_check_confusion": {"refine": {"ok_under": 3, "ok_over": 0}},
        "error_parts_median_abs": {"error_parts": {"depth_mm": 1.5, "sideways_mm": 0.25,
                                                   "rotation_deg": 0.75}},
        "seconds_per_image": {"total": {"mean": 2.5, "median": 2.0}},
    }
    lines = table_lines({"cts": [ct]})
    assert lines[:2] == ["", HEADER]
    no_refine, refine = lines[2].split(), lines[3].split()
    assert no_refine[:3] == ["pelvis_bone_001", "no_refine", "3"]
    assert no_refine[-1] == "1.25" and refine[-1] == "-"
    assert no_refine[-2] == "33%"  # one of three failed (over 10 mm)
    assert lines[4] == "  refinement started from: header 1, pnp 2"
    assert lines[5] == "  self-check refine: ok_under 3, ok_over 0"
    assert "depth 1.50 mm, sideways 0.25 mm, rotation 0.75 deg" in lines[6]
    assert lines[7] == "  seconds/image (mean): total 2.500"
    assert fmt(None) == "-" and fmt(math.inf) == "-" and fmt(1.234) == "1.23"
