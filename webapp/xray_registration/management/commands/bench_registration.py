"""Accuracy and speed benchmark of X-ray to CT registration on held-out simulated X-rays.

For each CT: train (or reuse) a model at the chosen preset, simulate held-out X-rays
(poses from a different random stream, a different noise/contrast setting than training,
including close-ups), and register each one three ways: network + PnP (no refinement),
network + PnP + intensity refinement, and intensity refinement alone from a rough start
(+-10 deg, +-30 mm). Prints a table and writes JSON.
"""

from __future__ import annotations

import math
import os
import platform
from pathlib import Path

import numpy as np
from django.core.management.base import BaseCommand, CommandError

from registration.bench import ood_bench, ood_run
from registration.bench import report as ood_report
from simulation import heldout
from simulation.heldout import PartsNotOnOneGrid, summarise
from webapp.xray_registration.management.commands._regio import (
    check_device,
    one_line,
    write_json_atomic,
)

DEFAULT_CT_DIR = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "ct"


def load_bench_ct(path: Path):
    """:func:`simulation.heldout.load_bench_ct`, its refusals as CommandError."""
    from dicomio.errors import InputRefused

    try:
        return heldout.load_bench_ct(path)
    except PartsNotOnOneGrid as exc:
        raise CommandError(str(exc)) from exc
    except InputRefused as exc:
        raise CommandError(f"cannot load {path}: {one_line(exc)}") from exc


def default_cts() -> list[Path]:
    if not DEFAULT_CT_DIR.is_dir():
        return []
    out = [DEFAULT_CT_DIR / "abdomen_pelvis_totalseg.nii.gz"]
    out += sorted(p for p in DEFAULT_CT_DIR.glob("pelvis_bone_*") if p.is_dir())
    return [p for p in out if p.exists()]


def bench_cts(given: list[str] | None) -> list[Path]:
    """The CTs of a benchmark: the ``--ct`` paths, else those of the shared data; each
    must exist (CommandError otherwise)."""
    cts = [Path(p) for p in given] if given else default_cts()
    if not cts:
        raise CommandError("no CT given and ../shared/data/ct not found: pass --ct PATH")
    for p in cts:
        if not p.exists():
            raise CommandError(f"CT not found: {p}")
    return cts


def bench_ct_name(path: Path) -> str:
    """A CT's name in tables and model tags: the file or folder name without .nii.gz."""
    return path.name.replace(".nii.gz", "")


class Command(BaseCommand):
    help = (
        "Benchmark registration accuracy (3D mTRE, projected distance) and speed on held-out "
        "simulated X-rays of the CTs in ../shared/data/ct (or --ct). Trains a model per CT at "
        "--preset unless one for that CT is already in --models. Prints a table and writes JSON."
    )

    def add_arguments(self, parser):
        parser.add_argument("--ct", action="append", help="CT path (repeatable); default: shared data")
        parser.add_argument("--preset", default="quick", choices=["quick", "standard", "full"])
        parser.add_argument("--train-minutes", type=float, default=None,
                            help="train for this long instead of the preset's time budget "
                                 "(same network and data; steps bounded by the clock alone); "
                                 "the model is cached apart from the preset's")
        parser.add_argument("--n-images", type=int, default=None,
                            help="shots per CT (default 20 in distribution, 60 out of it)")
        parser.add_argument("--heldout", default="in", choices=["in", "ood", "both"],
                            help="in: held-out shots of our own simulator (today's benchmark); "
                                 "ood: shots rendered by nanodrr with another X-ray chain, stored "
                                 "as PNG/DICOM files and registered through register_xray's path; "
                                 "both: the two, side by side")
        parser.add_argument("--ood-modes", default="model,init_3_5,init_8_20",
                            help="OOD starts, comma-separated: model (the trained network, with "
                                 "the header start on DICOM shots), init_3_5 / init_8_20 (true "
                                 "pose perturbed by 3 deg/5 mm or 8 deg/20 mm, no network), "
                                 "training_free")
        parser.add_argument("--training-free", action="store_true",
                            help="add the training-free mode (no network) to --ood-modes")
        parser.add_argument("--shots-dir", default="bench_out/ood_shots",
                            help="where the OOD shots are written (reused for the same seed)")
        parser.add_argument("--json", default="bench_out/bench_registration.json")
        parser.add_argument("--models", default="bench_out/models", help="folder of cached models")
        parser.add_argument("--seed", type=int, default=1000)
        parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
        parser.add_argument("--closeup-share", type=float, default=0.3)
        parser.add_argument("--skip-refine-only", action="store_true")
        parser.add_argument("--network-only", action="store_true",
                            help="network + PnP alone (no search, refinement or refine-only "
                                 "run): a quick comparison of models")
        parser.add_argument("--restarts", type=int, default=None,
                            help="self-check re-refinements per result (default: the pipeline's)")
        parser.add_argument("--frozen-depth", action="store_true",
                            help="refine 5 DoF, keeping the depth of the start pose")
        parser.add_argument("--no-header-start", action="store_true",
                            help="do not give the full pipeline the header-angle start pose "
                                 "(the site gives it whenever the X-ray header has the angles)")
        parser.add_argument("--no-search", action="store_true",
                            help="skip the coarse pose search before refinement")
        parser.add_argument("--fixed-dose", action="store_true",
                            help="draw the tube output (4e3-6e4 photons per pixel, unattenuated) "
                                 "regardless of the patient instead of automatic exposure control "
                                 "(a set point of 1e3-1e4 photons at the centre, tube limit 2.5e5)")
        parser.add_argument("--no-profile-search", action="store_true",
                            help="skip the depth profile search (for comparison)")
        parser.add_argument("--no-pnp-polish", action="store_true",
                            help="skip the weighted LM of the PnP pose on every bone "
                                 "correspondence (RegistrationOptions.pnp_polish; for comparison)")
        parser.add_argument("--box-pivot", action="store_true",
                            help="turn about the bone-box centre instead of the view's centre")

    def handle(self, *args, **opts):
        device = check_device(opts["device"])
        if opts["restarts"] is not None and opts["restarts"] < 0:
            raise CommandError("--restarts must be >= 0")
        if opts["train_minutes"] is not None and not 0 < opts["train_minutes"] <= 24 * 60:
            raise CommandError("--train-minutes must be in (0, 1440]")
        if opts["n_images"] is not None and opts["n_images"] < 1:
            raise CommandError("--n-images must be >= 1")
        modes = [m.strip() for m in opts["ood_modes"].split(",") if m.strip()]
        if opts["training_free"] and "training_free" not in modes:
            modes.append("training_free")
        bad = [m for m in modes if m not in ood_run.MODES]
        if bad or not modes:
            raise CommandError(f"unknown --ood-modes {', '.join(bad) or '(none)'}; "
                               f"choose from {', '.join(ood_run.MODES)}")
        report: dict = {}
        if opts["heldout"] in ("in", "both"):
            report = self._in_distribution(bench_cts(opts["ct"]), opts, device)
        if opts["heldout"] in ("ood", "both"):
            report["heldout"] = opts["heldout"]
            report["ood"] = self._ood(opts, device, modes)
        write_json_atomic(opts["json"], report)
        if "cts" in report:
            self._table(report)
        if "ood" in report:
            self.stdout.write("")
            self.stdout.write("OUT OF DISTRIBUTION (nanodrr shots, PNG/DICOM files, register_xray's path)")
            for line in ood_report.table_lines(report["ood"]["report"]):
                self.stdout.write(line)
        if "ood" in report and "cts" in report:
            self.stdout.write("")
            self.stdout.write("side by side (all CTs)")
            for line in ood_report.side_by_side(report["pooled"].get("refine", {}),
                                                report["ood"]["report"]):
                self.stdout.write(line)
        self.stdout.write(f"wrote {opts['json']}")

    def _ood(self, opts, device: str, modes: list[str]) -> dict:
        """The OOD benchmark's JSON part (registration.bench.ood_bench)."""
        from dicomio.errors import InputRefused

        if opts["ct"]:
            paths = bench_cts(opts["ct"])
        else:
            paths = ood_bench.default_ood_cts(DEFAULT_CT_DIR.parent)
            if not paths:
                raise CommandError("no CT given and ../shared/data not found: pass --ct PATH")
        cts = []
        for p in paths:
            cts.append((bench_ct_name(p), load_bench_ct(p), p))
        n = opts["n_images"] or 60
        try:
            return ood_bench.run_ood(
                cts, modes, n=n, seed=opts["seed"], shots_dir=Path(opts["shots_dir"]),
                device=device, log=self.stdout.write,
                get_model=lambda path, vol: self._model_for(path, vol, opts, device)[0])
        except ood_run.ModeUnavailable as exc:
            raise CommandError(one_line(exc)) from exc
        except (InputRefused, OSError) as exc:
            raise CommandError(f"OOD benchmark: {one_line(exc)}") from exc

    def _in_distribution(self, cts: list[Path], opts, device: str) -> dict:
        """Today's benchmark: held-out shots of our own simulator (table + JSON fields)."""
        import torch

        opts = {**opts, "n_images": opts["n_images"] or 20}
        report = {
            "preset": opts["preset"],
            "train_minutes": opts["train_minutes"],
            "n_images_per_ct": opts["n_images"],
            "device": device,
            "machine": {
                "cpu_count": os.cpu_count(),
                "torch_threads": torch.get_num_threads(),
                "platform": platform.platform(),
                "load_average_start": list(os.getloadavg()),
                "note": "shared CPU: timings include contention from other processes",
            },
            "cts": [],
        }
        for ct in cts:
            report["cts"].append(self._bench_ct(ct, opts, device))
        report["machine"]["load_average_end"] = list(os.getloadavg())
        # pooled over CTs
        pooled = {}
        for mode in ("no_refine", "refine", "refine_unchecked", "refine_only",
                     "refine_only_unchecked"):
            errs = [e for c in report["cts"] for e in c["per_image_mtre"].get(mode, [])]
            if errs:
                pooled[mode] = summarise([x if x is not None else math.inf for x in errs])
        report["pooled"] = pooled
        return report

    # ------------------------------------------------------------------ the model
    def _model_for(self, ct_path: Path, volume, opts, device: str):
        """(loaded model, training info) for the CT: the cached one in --models when it
        was trained on this CT and camera, else one trained now at --preset and cached."""
        from registration.engine.model_io import (
            ModelError,
            ct_fingerprint,
            load_model,
            save_model,
            versions,
        )
        from registration.engine.training import clock_bounded, get_preset, train_model
        from webapp.env import training_overrides

        name = bench_ct_name(ct_path)
        cam = heldout.bench_camera()
        fp = ct_fingerprint(volume.array, volume.affine)
        preset = get_preset(opts["preset"], training_overrides())
        tag = f"{name}_{opts['preset']}"
        if opts["train_minutes"] is not None:
            preset = clock_bounded(preset, opts["train_minutes"])
            tag += f"_{opts['train_minutes']:g}min"
        mdir = Path(opts["models"]) / tag
        model = None
        train_info = {}
        try:
            model = load_model(mdir, device)
            if model.meta.get("ct_fingerprint") != fp or model.meta.get("camera") != cam.to_json():
                model = None
            else:
                train_info = {"reused": str(mdir)}
        except ModelError:
            model = None
        if model is None:
            self.stdout.write(f"[{name}] training a {opts['preset']} model "
                              f"({preset.max_seconds / 60:g} min budget) ...")
            tr = train_model(volume, cam, preset=preset, seed=0, device=device,
                             log=lambda m: self.stdout.write(f"[{name}] {m}"))
            meta = tr.meta
            meta.update(ct_fingerprint=fp, ct_shape=list(volume.shape), versions=versions())
            save_model(mdir, tr.net, meta)
            model = load_model(mdir, device)
        train_info.update(
            seconds=model.meta["training"]["seconds"], steps=model.meta["training"]["steps_done"],
            final_median_error_mm=model.meta["training"].get("final_median_error_mm"),
        )
        return model, train_info

    # ------------------------------------------------------------------ per CT
    def _bench_ct(self, ct_path: Path, opts, device: str) -> dict:
        import torch

        from geometry.carm import carm_pose
        from geometry.rigid import perturb_pose
        from registration.engine.dataset import PoseSampler, bone_points
        from registration.engine.drr import DrrRenderer
        from registration.engine.pipeline import RegistrationOptions, register
        from simulation.heldout import HELDOUT_STREAM_OFFSET, simulate_heldout_shot

        volume = load_bench_ct(ct_path)
        name = bench_ct_name(ct_path)
        cam = heldout.bench_camera()
        model, train_info = self._model_for(ct_path, volume, opts, device)
        renderer = DrrRenderer(volume, device=device, bone_threshold_hu=model.bone_threshold_hu)
        with torch.no_grad():  # warm-up, so that per-image timings are steady-state
            s = model.input_size
            model.net(torch.zeros(1, 1, s, s, device=device))
        from registration.engine.dataset import BoneBox

        box = BoneBox(np.asarray(model.meta["normalisation"]["centre_lps_mm"]),
                      np.asarray(model.meta["normalisation"]["half_extent_mm"]))
        sampler = PoseSampler(box, cam)
        rng = np.random.default_rng(opts["seed"] + HELDOUT_STREAM_OFFSET)  # never in training
        all_bone = bone_points(volume, model.bone_threshold_hu, max_points=20000, seed=1)
        modes = ("no_refine", "refine", "refine_unchecked", "refine_only", "refine_only_unchecked")
        per: dict[str, list] = {m: [] for m in modes}
        pde: dict[str, list] = {m: [] for m in modes}
        stages: dict[str, list[float]] = {}
        kinds = []
        per_image: list[dict] = []
        ropts = {"device": device, "optimise_depth": not opts["frozen_depth"],
                 "search": not opts["no_search"], "view_pivot": not opts["box_pivot"],
                 "profile_search": not opts["no_profile_search"],
                 "pnp_polish": not opts["no_pnp_polish"]}
        if opts["restarts"] is not None:
            ropts["n_restarts"] = opts["restarts"]
        net_only = bool(opts["network_only"])
        if net_only:
            ropts["refine"] = False
        n = opts["n_images"]
        # one untimed registration first (the network is warmed above), so that per-image
        # seconds are those of a worker that has registered before: the first call in a
        # process pays one-off allocations and kernel set-up (measured 2.5-3 s here)
        T_warm = carm_pose(0.0, 0.0, float(cam.source_to_detector_mm) * 0.65, box.centre)
        warm = renderer.render_numpy(cam, T_warm, samples_per_ray=64)
        register(volume, model, warm, np.ones_like(warm, bool), cam, T_init=T_warm,
                 options=RegistrationOptions(**ropts), renderer=renderer)
        for i in range(n):
            shot = simulate_heldout_shot(renderer, cam, sampler, rng, all_bone, index=i,
                                         seed=opts["seed"], closeup_share=opts["closeup_share"],
                                         fixed_dose=opts["fixed_dose"])
            img, val, icam, T_true, info, tgt = (shot.image, shot.valid, shot.camera,
                                                 shot.T_true, shot.info, shot.targets)
            kinds.append(shot.kind)
            T_header = (None if opts["no_header_start"]
                        else heldout.header_start_pose(info, rng, box.centre))
            res = register(volume, model, img, val, icam, T_init=T_header,
                           options=RegistrationOptions(**ropts), renderer=renderer)
            for k, v in res.stages.items():
                stages.setdefault(k, []).append(float(v.get("seconds", 0.0)))
            stages.setdefault("total", []).append(res.seconds)
            netpnp = sum(res.stages.get(k, {}).get("seconds", 0.0)
                         for k in ("preprocess", "network", "selection", "pnp"))
            stages.setdefault("network_plus_pnp", []).append(netpnp)

            def err(T, tgt=tgt, T_true=T_true, icam=icam):
                return _errors(T, tgt, T_true, icam)

            per_image.append({
                "kind": kinds[-1], "status": res.status, "message": res.message,
                "similarity": res.similarity if math.isfinite(res.similarity) else None,
                "n_inliers": res.n_inliers, "n_correspondences": res.n_correspondences,
                "mask_dice": res.stages.get("quality", {}).get("mask_dice"),
                "local_similarity": res.stages.get("quality", {}).get("local_similarity"),
                "restart_spread_mm": res.stages.get("restarts", {}).get("spread_mm"),
                "refined_from": res.stages.get("hypotheses", {}).get("start"),
                "stages": res.stages,
            })
            e3, e2 = err(res.T_cam_from_world)
            per_image[-1]["mtre_header_start_mm"] = err(T_header)[0]
            per_image[-1]["mtre_mm"] = e3
            per_image[-1]["mtre_of_rejected_mm"] = err(res.extras.get("T_rejected"))[0]
            # the bone centre's distance from the source at the true pose (depth bias)
            per_image[-1]["true_centre_depth_mm"] = float((T_true[:3, :3] @ box.centre
                                                           + T_true[:3, 3])[2])
            if not net_only:
                per["refine"].append(e3)
                pde["refine"].append(e2)
                e3c, e2c = err(res.T_cam_from_world if res.T_cam_from_world is not None
                               else res.extras.get("T_rejected"))
                per["refine_unchecked"].append(e3c)
                pde["refine_unchecked"].append(e2c)
            e3n, e2n = err(res.T_pnp)
            per_image[-1]["pnp_error_parts"] = _error_parts(res.T_pnp, T_true, box.centre)
            per_image[-1]["error_parts"] = _error_parts(
                res.T_cam_from_world if res.T_cam_from_world is not None
                else res.extras.get("T_rejected"), T_true, box.centre)
            per["no_refine"].append(e3n)
            pde["no_refine"].append(e2n)
            if not opts["skip_refine_only"] and not net_only:
                # its own stream per image, so skipping this mode leaves the shots unchanged
                rough_rng = np.random.default_rng([opts["seed"], 104729, i])
                T_rough = perturb_pose(T_true, float(rough_rng.uniform(0, 10)),
                                       float(rough_rng.uniform(0, 30)), rough_rng,
                                       center_world=box.centre)
                r2 = register(volume, None, img, val, icam, T_init=T_rough,
                              options=RegistrationOptions(**ropts), renderer=renderer)
                e3r, e2r = err(r2.T_cam_from_world)
                per_image[-1]["refine_only"] = {
                    "status": r2.status, "message": r2.message,
                    "similarity": r2.similarity if math.isfinite(r2.similarity) else None,
                    "local_similarity": r2.stages.get("quality", {}).get("local_similarity"),
                    "mtre_mm": e3r, "mtre_of_rejected_mm": err(r2.extras.get("T_rejected"))[0],
                    "seconds": r2.seconds,
                    "restart_spread_mm": r2.stages.get("restarts", {}).get("spread_mm"),
                }
                per["refine_only"].append(e3r)
                # the refined pose whether or not it passed its self-check (accuracy alone)
                e3u, e2u = err(r2.T_cam_from_world if r2.T_cam_from_world is not None
                               else r2.extras.get("T_rejected"))
                per["refine_only_unchecked"].append(e3u)
                pde["refine_only_unchecked"].append(e2u)
                pde["refine_only"].append(e2r)
                stages.setdefault("refine_only_total", []).append(r2.seconds)
            self.stdout.write(
                f"[{name}] {i + 1}/{n} {kinds[-1]:7s} {res.status:6s} mTRE pnp "
                f"{_f(e3n)} refined {_f(e3)} (from {per_image[-1]['refined_from']}, "
                f"unchecked {_f(per['refine_unchecked'][-1] if per['refine_unchecked'] else None)}) refine-only {_f(per['refine_only'][-1] if per['refine_only'] else None)}"
                f" mm  {res.seconds:.2f} s  {res.message if res.status != 'ok' else ''}"
            )
        confusion = {"network_only" if net_only else "refine": _confusion(per_image)}
        if not opts["skip_refine_only"] and not net_only:
            confusion["refine_only"] = _confusion([p["refine_only"] for p in per_image])
        starts = [p.get("refined_from") for p in per_image]
        parts_median = {}
        for key in ("pnp_error_parts", "error_parts"):
            rows = [p[key] for p in per_image if p.get(key)]
            if rows:
                parts_median[key] = {
                    k: round(float(np.median([abs(r[k]) for r in rows])), 3)
                    for k in ("depth_mm", "sideways_mm", "rotation_deg")}
        out = {
            "ct": str(ct_path),
            "header_start": not opts["no_header_start"],
            "exposure": "fixed dose 4e3-6e4" if opts["fixed_dose"] else "AEC set point 1e3-1e4",
            "refined_from_counts": {k: starts.count(k) for k in set(starts) if k},
            "self_check_confusion": confusion,
            "error_parts_median_abs": parts_median,
            "name": name,
            "ct_shape": list(volume.shape),
            "model": train_info,
            "camera": cam.to_json(),
            "image_kinds": kinds,
            "per_image": per_image,
            "optimise_depth": not opts["frozen_depth"],
            "registration_options": {k: v for k, v in ropts.items() if k != "device"},
            "per_image_mtre": per,
            "per_image_projected_mm": pde,
            "summary": {m: summarise([x if x is not None else math.inf for x in v]) for m, v in per.items() if v},
            "projected_distance_mm": {
                m: {"median": float(np.median([x for x in v if x is not None])) if any(x is not None for x in v) else None}
                for m, v in pde.items() if v
            },
            "seconds_per_image": {k: {"mean": float(np.mean(v)), "median": float(np.median(v))}
                                  for k, v in stages.items()},
        }
        return out

    def _table(self, report: dict) -> None:
        w = self.stdout.write
        w("")
        w(f"{'CT':28s} {'mode':12s} {'n':>3s} {'median':>7s} {'mean':>7s} {'p95':>7s} {'<1mm':>5s} {'<2':>5s} "
          f"{'<5':>5s} {'<10':>5s} {'best-half':>13s} {'fail>10':>7s} {'mPD':>6s}")
        for c in report["cts"]:
            for mode, s in c["summary"].items():
                sh = s["share_under_mm"]
                bh = f"{_f(s['best_half_mean_mm'])}±{_f(s['best_half_sd_mm'])}"
                w(f"{c['name'][:28]:28s} {mode:12s} {s['n']:3d} {_f(s['median_mm']):>7s} "
                  f"{_f(s['mean_mm_of_registered']):>7s} {_f(s['p95_mm']):>7s} {sh['1']:5.0%} {sh['2']:5.0%} "
                  f"{sh['5']:5.0%} {sh['10']:5.0%} {bh:>13s} {s['failure_rate_over_10mm']:7.0%} "
                  f"{_f(c['projected_distance_mm'][mode]['median']):>6s}")
            if c.get("refined_from_counts"):
                w("  refinement started from: " + ", ".join(
                    f"{k} {v}" for k, v in sorted(c["refined_from_counts"].items())))
            for mode, cf in c.get("self_check_confusion", {}).items():
                w(f"  self-check {mode}: " + ", ".join(f"{k} {v}" for k, v in cf.items()))
            for key, label in (("pnp_error_parts", "network + PnP"),
                               ("error_parts", "refined (incl. rejected)")):
                m = c.get("error_parts_median_abs", {}).get(key)
                if m:
                    w(f"  bone-centre error, {label} (median |.|): depth {m['depth_mm']:.2f} mm, "
                      f"sideways {m['sideways_mm']:.2f} mm, rotation {m['rotation_deg']:.2f} deg")
            sec = c["seconds_per_image"]
            w("  seconds/image (mean): " + ", ".join(f"{k} {v['mean']:.3f}" for k, v in sec.items()))


def _confusion(rows: list[dict], limit_mm: float = 10.0) -> dict:
    """Self-check outcome against the true error: counts of ok/failed results whose pose
    (the reported one, or the rejected one for a failure) is under/over ``limit_mm`` mTRE;
    ``failed_no_pose`` counts failures before any pose was estimated."""
    out = {"ok_under": 0, "ok_over": 0, "failed_under": 0, "failed_over": 0, "failed_no_pose": 0}
    for r in rows:
        if r["status"] == "ok":
            out["ok_under" if r["mtre_mm"] <= limit_mm else "ok_over"] += 1
        elif r.get("mtre_of_rejected_mm") is None:
            out["failed_no_pose"] += 1
        else:
            out["failed_under" if r["mtre_of_rejected_mm"] <= limit_mm else "failed_over"] += 1
    return out


def _errors(T, tgt: np.ndarray, T_true: np.ndarray, icam) -> tuple[float | None, float | None]:
    """(3D mTRE in mm, mean projected distance at the detector in mm) of pose ``T``."""
    from geometry.camera import project
    from geometry.rigid import target_error_mm

    if T is None:
        return None, None
    e3 = float(target_error_mm(tgt, T, T_true).mean())
    pa, pb = project(tgt, icam.K, T), project(tgt, icam.K, T_true)
    sp = np.asarray(icam.pixel_spacing_mm)
    return e3, float(np.mean(np.linalg.norm((pa - pb) * sp, axis=1)))


def _error_parts(T, T_true: np.ndarray, centre_world: np.ndarray) -> dict | None:
    """Where a pose's error lies, in the X-ray's camera frame: the bone-box centre's offset
    along the viewing ray through it (``depth_mm``, + away from the source) and across it
    (``sideways_mm``), and the rotation error (``rotation_deg``); None without a pose."""
    from geometry.rigid import rotation_angle_deg

    if T is None:
        return None
    T, T_true = np.asarray(T, np.float64), np.asarray(T_true, np.float64)
    c = np.asarray(centre_world, np.float64)
    # both poses map the world into the same (the X-ray's) camera frame
    p_true = T_true[:3, :3] @ c + T_true[:3, 3]
    p_est = T[:3, :3] @ c + T[:3, 3]
    ray = p_true / np.linalg.norm(p_true)
    d = p_est - p_true
    along = float(d @ ray)
    return {"depth_mm": round(along, 3),
            "sideways_mm": round(float(np.linalg.norm(d - along * ray)), 3),
            "rotation_deg": round(rotation_angle_deg(T[:3, :3], T_true[:3, :3]), 3)}


def _f(x) -> str:
    return "-" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:.2f}"
