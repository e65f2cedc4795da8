"""How well the similarity self-checks separate right from wrong poses, on held-out
simulated X-rays: the study behind ``QualityThresholds.min_similarity`` and
``min_local_similarity``, as one command.

For each held-out shot (the shots of ``bench_registration`` for the same seed) the true
pose and ``--starts`` poses refined by :func:`refine_pose` alone from rough starts
(3-10 deg and 15-45 mm off, about the bone centre) are scored as the pipeline scores a
refine-only result: the similarity at the finest refinement level and the local
similarity. A pose counts as right when its 3D mTRE is at most 10 mm. Prints a table
(the current thresholds and a sweep of the local one) and writes JSON. Needs no network.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from django.core.management.base import BaseCommand, CommandError

from webapp.xray_registration.management.commands._regio import (
    check_device,
    one_line,
    write_json_atomic,
)
from webapp.xray_registration.management.commands.bench_registration import (
    bench_ct_name,
    bench_cts,
    load_bench_ct,
)

RIGHT_MM = 10.0  # a pose at most this far off (3D mTRE) is right
LOCAL_SWEEP = (0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9)


def separation(rows: list[dict], min_similarity: float, min_local: float | None) -> dict:
    """Counts of right poses the checks reject and wrong poses they accept: the global
    similarity alone (``min_local`` None) or both checks."""
    def passes(r: dict) -> bool:
        ok = r["similarity"] >= min_similarity
        return ok and (min_local is None or r["local_similarity"] >= min_local)

    right = [r for r in rows if r["mtre_mm"] <= RIGHT_MM]
    wrong = [r for r in rows if r["mtre_mm"] > RIGHT_MM]
    accepted_wrong = [r for r in wrong if passes(r)]
    return {
        "n_right": len(right),
        "n_wrong": len(wrong),
        "right_rejected": sum(not passes(r) for r in right),
        "wrong_accepted": len(accepted_wrong),
        "wrong_accepted_mtre_mm": sorted(round(r["mtre_mm"], 1) for r in accepted_wrong),
    }


class Command(BaseCommand):
    help = (
        "Study of the registration's similarity self-checks on held-out simulated X-rays of "
        "the CTs in ../shared/data/ct (or --ct): true poses and poses refined from rough "
        "starts, scored as the pipeline scores them. Prints a table and writes JSON."
    )

    def add_arguments(self, parser):
        parser.add_argument("--ct", action="append", help="CT path (repeatable); default: shared data")
        parser.add_argument("--n-images", type=int, default=24)
        parser.add_argument("--starts", type=int, default=3,
                            help="rough starts refined per shot (besides the true pose)")
        parser.add_argument("--seed", type=int, default=1000)
        parser.add_argument("--closeup-share", type=float, default=0.3)
        parser.add_argument("--fixed-dose", action="store_true",
                            help="fixed tube output instead of automatic exposure control")
        parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
        parser.add_argument("--json", default="bench_out/bench_self_check.json")

    def handle(self, *args, **opts):
        from registration.engine.quality import QualityThresholds

        device = check_device(opts["device"])
        if opts["n_images"] < 1:
            raise CommandError("--n-images must be >= 1")
        if opts["starts"] < 0:
            raise CommandError("--starts must be >= 0")
        if not 0.0 <= opts["closeup_share"] <= 1.0:
            raise CommandError("--closeup-share must be in [0, 1]")
        cts = bench_cts(opts["ct"])
        th = QualityThresholds()
        report = {"thresholds": {"min_similarity": th.min_similarity,
                                 "min_local_similarity": th.min_local_similarity},
                  "right_mm": RIGHT_MM, "n_images_per_ct": opts["n_images"],
                  "starts": opts["starts"], "seed": opts["seed"],
                  "exposure": "fixed dose" if opts["fixed_dose"] else "AEC", "cts": []}
        rows_all: list[dict] = []
        for ct in cts:
            rows = self._poses(ct, opts, device)
            rows_all += rows
            report["cts"].append({"ct": str(ct), "name": bench_ct_name(ct),
                                  "poses": rows, **self._summary(rows, th)})
        report["pooled"] = self._summary(rows_all, th)
        write_json_atomic(opts["json"], report)
        self._table(report)
        self.stdout.write(f"wrote {opts['json']}")

    @staticmethod
    def _summary(rows: list[dict], th) -> dict:
        right = [r for r in rows if r["mtre_mm"] <= RIGHT_MM]
        return {
            "global_only": separation(rows, th.min_similarity, None),
            "global_and_local": separation(rows, th.min_similarity, th.min_local_similarity),
            "local_sweep": {f"{t:g}": separation(rows, th.min_similarity, t) for t in LOCAL_SWEEP},
            "lowest_local_similarity_of_right": min((r["local_similarity"] for r in right),
                                                    default=None),
        }

    def _poses(self, ct_path: Path, opts, device: str) -> list[dict]:
        import torch

        from geometry.rigid import perturb_pose, target_error_mm
        from registration.engine.dataset import PoseSampler, bone_box, bone_points
        from registration.engine.drr import DrrRenderer
        from registration.engine.pipeline_stages import similarity_on_square
        from registration.engine.refine import DEFAULT_LEVELS, refine_pose
        from registration.engine.refine_similarity import local_similarity
        from registration.engine.xray_input import to_square
        from simulation.heldout import (
            HELDOUT_STREAM_OFFSET,
            bench_camera,
            simulate_heldout_shot,
        )

        volume = load_bench_ct(ct_path)
        name = bench_ct_name(ct_path)
        cam = bench_camera()
        renderer = DrrRenderer(volume, device=device)
        try:
            box = bone_box(volume, renderer.bone_threshold_hu)
        except ValueError as exc:
            raise CommandError(f"{name}: {one_line(exc)}") from exc
        sampler = PoseSampler(box, cam)
        rng = np.random.default_rng(opts["seed"] + HELDOUT_STREAM_OFFSET)
        all_bone = bone_points(volume, renderer.bone_threshold_hu, max_points=20000, seed=1)
        last = DEFAULT_LEVELS[-1]
        rows: list[dict] = []
        for i in range(opts["n_images"]):
            shot = simulate_heldout_shot(renderer, cam, sampler, rng, all_bone, index=i,
                                         seed=opts["seed"], closeup_share=opts["closeup_share"],
                                         fixed_dose=opts["fixed_dose"])
            rng.normal(0, 2, 2)  # the bench's header-angle draws: keeps the next shots the same
            rsize = int(min(128, max(shot.image.shape)))
            rsize -= rsize % 4
            sq = to_square(shot.image, shot.valid, shot.camera.K, rsize)
            img_t, val_t = torch.as_tensor(sq.image), torch.as_tensor(sq.valid)
            rough = np.random.default_rng([opts["seed"], 7877, i])
            poses = [("true", shot.T_true)]
            for _ in range(opts["starts"]):
                T0 = perturb_pose(shot.T_true, float(rough.uniform(3, 10)),
                                  float(rough.uniform(15, 45)), rough, center_world=box.centre)
                rr = refine_pose(renderer, img_t, sq.K, T0, valid=val_t, pivot_world=box.centre)
                poses.append(("refined", rr.T_cam_from_world))
            for kind, T in poses:
                rows.append({
                    "image": i, "image_kind": shot.kind, "pose": kind,
                    "mtre_mm": float(target_error_mm(shot.targets, T, shot.T_true).mean()),
                    "similarity": similarity_on_square(renderer, T, sq.K, img_t, val_t,
                                                       last.factor, last.samples_per_ray),
                    "local_similarity": local_similarity(renderer, img_t, sq.K, T, val_t),
                })
            wrong = sum(r["mtre_mm"] > RIGHT_MM for r in rows[-len(poses):])
            self.stdout.write(f"[{name}] {i + 1}/{opts['n_images']} {shot.kind:7s} "
                              f"{len(poses)} poses, {wrong} > {RIGHT_MM:g} mm off")
        return rows

    def _table(self, report: dict) -> None:
        w = self.stdout.write
        th = report["thresholds"]
        w("")
        w(f"right: mTRE <= {report['right_mm']:g} mm; global similarity >= "
          f"{th['min_similarity']:g}, local >= {th['min_local_similarity']:g}")
        w(f"{'CT':28s} {'checks':18s} {'right':>6s} {'rejected':>9s} {'wrong':>6s} "
          f"{'accepted':>9s}  accepted wrong mTRE (mm)")
        sections = [(c["name"], c) for c in report["cts"]] + [("pooled", report["pooled"])]
        for name, c in sections:
            for label, key in (("global", "global_only"), ("global + local", "global_and_local")):
                s = c[key]
                w(f"{name[:28]:28s} {label:18s} {s['n_right']:6d} {s['right_rejected']:9d} "
                  f"{s['n_wrong']:6d} {s['wrong_accepted']:9d}  "
                  f"{', '.join(f'{x:g}' for x in s['wrong_accepted_mtre_mm']) or '-'}")
        pooled = report["pooled"]
        w("local threshold sweep (pooled, with the global threshold): " + "; ".join(
            f"{t}: {s['right_rejected']} right rejected, {s['wrong_accepted']} wrong accepted"
            for t, s in pooled["local_sweep"].items()))
        low = pooled["lowest_local_similarity_of_right"]
        w("lowest local similarity of a right pose: " + ("-" if low is None or not math.isfinite(low)
                                                          else f"{low:.3f}"))
