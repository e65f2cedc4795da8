"""``python manage.py bench_planning [--json PATH]``: two-view planning accuracy.

Simulated cases (known CT box, known C-arm poses from carm_pose, 1 px pick noise):
triangulated entry/target error in CT mm with views 90°, 45° and 30° apart, and the
tool projection error at the detector in px through an optical-tracking chain.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from simulation.planning_cases import (
    Setup,
    setup_from_ct,
    tool_projection_errors,
    triangulation_errors,
)

GOAL_MEAN_MM_90 = 0.7


class Command(BaseCommand):
    help = "Benchmark two-view triangulation and tool projection on simulated cases (table + JSON)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--json", dest="json_path", default=None, help="write the results here (JSON)"
        )
        parser.add_argument(
            "--cases", type=int, default=200, help="cases (trajectories) per separation"
        )
        parser.add_argument(
            "--noise-px", type=float, default=1.0, help="pick noise (pixels, Gaussian SD per axis)"
        )
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument(
            "--ct",
            default=None,
            help="a real CT (DICOM folder, .zip or NIfTI): plan between its bone voxels, C-arm isocentre at its centre",
        )

    def handle(self, *args, **opts):
        if opts["cases"] < 1 or opts["cases"] > 100000:
            raise CommandError("--cases must be between 1 and 100000")
        if not 0 <= opts["noise_px"] <= 50:
            raise CommandError("--noise-px must be between 0 and 50")
        started = time.perf_counter()
        setup, bone, ct_label = Setup(), None, "synthetic box"
        if opts["ct"]:
            from dicomio.ct import load_ct

            try:
                volume = load_ct(opts["ct"])
                setup, bone = setup_from_ct(volume.array, volume.affine, seed=opts["seed"])
            except (ValueError, OSError) as exc:
                raise CommandError(f"cannot use CT {opts['ct']}: {exc}") from None
            ct_label = f"{Path(opts['ct']).name} ({len(bone)} bone voxels sampled)"
        results = {
            "setup": {
                "detector_px": [setup.width, setup.height],
                "pixel_mm": setup.pixel_mm,
                "source_to_detector_mm": setup.sdd_mm,
                "source_to_isocenter_mm": setup.sid_mm,
                "ct_centre_lps_mm": list(setup.ct_centre),
                "ct_half_size_mm": list(setup.ct_half_size),
                "ct": ct_label,
                "pose_model": "geometry.carm.carm_pose, view 1 LAO U(-15,15), cranial U(-10,10) each view, isocentre jitter 20 mm",
                "seed": opts["seed"],
            },
            "triangulation": [],
            "tool_projection": [],
        }
        for i, sep in enumerate((90.0, 45.0, 30.0)):
            results["triangulation"].append(
                triangulation_errors(
                    setup, sep, opts["cases"], opts["noise_px"], opts["seed"] + i, bone
                )
            )
        for i, (mm, deg) in enumerate(((0.0, 0.0), (0.25, 0.1))):
            results["tool_projection"].append(
                tool_projection_errors(
                    setup, max(20, opts["cases"] // 2), opts["seed"] + 10 + i, mm, deg
                )
            )
        mean90 = results["triangulation"][0]["error_mm"]["mean"]
        results["goal"] = {"mean_mm_at_90deg": GOAL_MEAN_MM_90, "met": mean90 <= GOAL_MEAN_MM_90}
        results["seconds"] = time.perf_counter() - started

        out = self.stdout
        out.write(f"CT: {ct_label}")
        out.write(
            f"Two-view triangulation, {opts['noise_px']:g} px pick noise, "
            f"{setup.width}x{setup.height} px at {setup.pixel_mm} mm, SDD {setup.sdd_mm:g} mm, SID {setup.sid_mm:g} mm"
        )
        out.write(
            f"{'views apart':>12} {'points':>7} {'mean mm':>8} {'p95 mm':>8} {'max mm':>8} {'gap mm':>7}"
        )
        for r in results["triangulation"]:
            e = r["error_mm"]
            out.write(
                f"{r['separation_deg']:>11.0f}° {r['n_points']:>7d} {e['mean']:>8.3f} {e['p95']:>8.3f} {e['max']:>8.3f} {r['ray_gap_mm_mean']:>7.3f}"
            )
        out.write("Tool projection at the detector (tracker -> patient reference -> CT chain)")
        out.write(
            f"{'tracking noise':>22} {'n':>5} {'tip mean px':>11} {'tip p95':>8} {'tip max':>8} {'ext-end mean px':>15} {'tip 3D mean mm':>14}"
        )
        for r in results["tool_projection"]:
            n = r["tracking_noise"]
            label = "none" if n["mm"] == 0 and n["deg"] == 0 else f"{n['mm']:g} mm, {n['deg']:g}°"
            out.write(
                f"{label:>22} {r['n_projections']:>5d} {r['tip_px']['mean']:>11.4f} {r['tip_px']['p95']:>8.4f} {r['tip_px']['max']:>8.4f} {r['extension_end_px']['mean']:>15.4f} {r['tip_3d_mm']['mean']:>14.4f}"
            )
        out.write(
            f"Goal mean <= {GOAL_MEAN_MM_90} mm at 90°: {'met' if results['goal']['met'] else 'NOT met'} ({mean90:.3f} mm)"
        )

        if opts["json_path"]:
            path = Path(opts["json_path"])
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                fd, tmp = tempfile.mkstemp(
                    dir=path.parent, prefix=".bench_planning.", suffix=".tmp"
                )
                with os.fdopen(fd, "w") as handle:
                    json.dump(results, handle, indent=2)
                os.replace(tmp, path)
            except OSError as exc:
                raise CommandError(f"cannot write {path}: {exc.strerror or exc}") from None
            out.write(f"wrote {path}")
