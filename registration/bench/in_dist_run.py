"""The in-distribution benchmark of ``bench_registration`` (``--heldout in``): per CT,
held-out shots of our own simulator (poses from a stream training never sees, another
noise/contrast setting, close-ups), each registered by the full pipeline, by network +
PnP alone, and by refinement alone from a rough start (+-10 deg, +-30 mm); errors in mm
(:mod:`registration.bench.pose_errors`), times in seconds."""

from __future__ import annotations

import math
import os
import platform
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from geometry.carm import carm_pose
from geometry.rigid import perturb_pose
from registration.bench.pose_errors import confusion, error_parts, parts_median, pose_errors
from registration.engine.dataset import BoneBox, PoseSampler, bone_points
from registration.engine.drr import DrrRenderer
from registration.engine.pipeline import RegistrationOptions, register
from simulation import heldout
from simulation.heldout import HELDOUT_STREAM_OFFSET, simulate_heldout_shot, summarise

MODES = ("no_refine", "refine", "refine_unchecked", "refine_only", "refine_only_unchecked")


@dataclass(frozen=True)
class InDistSettings:
    """What the in-distribution run does (the command's options, by meaning)."""

    n_images: int
    seed: int
    closeup_share: float
    fixed_dose: bool
    header_start: bool
    refine_only: bool
    network_only: bool
    optimise_depth: bool
    search: bool
    view_pivot: bool
    profile_search: bool
    pnp_polish: bool
    restarts: int | None

    @classmethod
    def from_options(cls, opts: Mapping) -> InDistSettings:
        """From ``bench_registration``'s parsed options (20 shots unless ``n_images``)."""
        return cls(
            n_images=opts["n_images"] or 20, seed=opts["seed"],
            closeup_share=opts["closeup_share"], fixed_dose=bool(opts["fixed_dose"]),
            header_start=not opts["no_header_start"], refine_only=not opts["skip_refine_only"],
            network_only=bool(opts["network_only"]), optimise_depth=not opts["frozen_depth"],
            search=not opts["no_search"], view_pivot=not opts["box_pivot"],
            profile_search=not opts["no_profile_search"], pnp_polish=not opts["no_pnp_polish"],
            restarts=opts["restarts"],
        )  # fmt: skip

    def registration_options(self, device: str) -> dict:
        """Keyword arguments of :class:`RegistrationOptions` for every registration."""
        ropts = {"device": device, "optimise_depth": self.optimise_depth, "search": self.search,
                 "view_pivot": self.view_pivot, "profile_search": self.profile_search,
                 "pnp_polish": self.pnp_polish}  # fmt: skip
        if self.restarts is not None:
            ropts["n_restarts"] = self.restarts
        if self.network_only:
            ropts["refine"] = False
        return ropts

    @property
    def runs_refine_only(self) -> bool:
        return self.refine_only and not self.network_only


@dataclass
class _CtRun:
    """One CT's run: what every shot needs, and the tallies filled shot by shot."""

    st: InDistSettings
    volume: object
    model: object
    renderer: DrrRenderer
    cam: object
    box: BoneBox
    ropts: dict
    per: dict = field(default_factory=lambda: {m: [] for m in MODES})
    pde: dict = field(default_factory=lambda: {m: [] for m in MODES})
    stages: dict = field(default_factory=dict)
    kinds: list = field(default_factory=list)
    per_image: list = field(default_factory=list)

    def register(self, model, img, val, icam, T_init):
        return register(self.volume, model, img, val, icam, T_init=T_init,
                        options=RegistrationOptions(**self.ropts), renderer=self.renderer)

    def add_seconds(self, key: str, seconds: float) -> None:
        self.stages.setdefault(key, []).append(seconds)


def _warm_up(run: _CtRun) -> None:
    """Network warm-up and one untimed registration, so that per-image seconds are those
    of a worker that has registered before: the first call in a process pays one-off
    allocations and kernel set-up (measured 2.5-3 s here)."""
    with torch.no_grad():
        s = run.model.input_size
        run.model.net(torch.zeros(1, 1, s, s, device=run.ropts["device"]))
    T_warm = carm_pose(0.0, 0.0, float(run.cam.source_to_detector_mm) * 0.65, run.box.centre)
    warm = run.renderer.render_numpy(run.cam, T_warm, samples_per_ray=64)
    run.register(run.model, warm, np.ones_like(warm, bool), run.cam, T_warm)


def _result_row(kind: str, res) -> dict:
    quality = res.stages.get("quality", {})
    return {
        "kind": kind, "status": res.status, "message": res.message,
        "similarity": res.similarity if math.isfinite(res.similarity) else None,
        "n_inliers": res.n_inliers, "n_correspondences": res.n_correspondences,
        "mask_dice": quality.get("mask_dice"), "local_similarity": quality.get("local_similarity"),
        "restart_spread_mm": res.stages.get("restarts", {}).get("spread_mm"),
        "refined_from": res.stages.get("hypotheses", {}).get("start"),
        "stages": res.stages,
    }  # fmt: skip


def _refine_only(run: _CtRun, i: int, shot, err) -> None:
    """Refinement alone from a rough start about the true pose (its own stream per image,
    so that skipping this mode leaves the shots unchanged)."""
    rough_rng = np.random.default_rng([run.st.seed, 104729, i])
    T_rough = perturb_pose(shot.T_true, float(rough_rng.uniform(0, 10)),
                           float(rough_rng.uniform(0, 30)), rough_rng,
                           center_world=run.box.centre)  # fmt: skip
    r2 = run.register(None, shot.image, shot.valid, shot.camera, T_rough)
    e3r, e2r = err(r2.T_cam_from_world)
    run.per_image[-1]["refine_only"] = {
        "status": r2.status, "message": r2.message,
        "similarity": r2.similarity if math.isfinite(r2.similarity) else None,
        "local_similarity": r2.stages.get("quality", {}).get("local_similarity"),
        "mtre_mm": e3r, "mtre_of_rejected_mm": err(r2.extras.get("T_rejected"))[0],
        "seconds": r2.seconds,
        "restart_spread_mm": r2.stages.get("restarts", {}).get("spread_mm"),
    }  # fmt: skip
    run.per["refine_only"].append(e3r)
    # the refined pose whether or not it passed its self-check (accuracy alone)
    e3u, e2u = err(r2.T_cam_from_world if r2.T_cam_from_world is not None
                   else r2.extras.get("T_rejected"))  # fmt: skip
    run.per["refine_only_unchecked"].append(e3u)
    run.pde["refine_only_unchecked"].append(e2u)
    run.pde["refine_only"].append(e2r)
    run.add_seconds("refine_only_total", r2.seconds)


def _one_shot(run: _CtRun, i: int, shot, T_header) -> tuple:
    """Register one shot by the full pipeline; tally it. Returns (result, PnP mTRE, mTRE)."""
    run.kinds.append(shot.kind)
    res = run.register(run.model, shot.image, shot.valid, shot.camera, T_header)
    for k, v in res.stages.items():
        run.add_seconds(k, float(v.get("seconds", 0.0)))
    run.add_seconds("total", res.seconds)
    run.add_seconds("network_plus_pnp", sum(res.stages.get(k, {}).get("seconds", 0.0)
                                            for k in ("preprocess", "network", "selection", "pnp")))

    def err(T):
        return pose_errors(T, shot.targets, shot.T_true, shot.camera)

    row = _result_row(shot.kind, res)
    run.per_image.append(row)
    e3, e2 = err(res.T_cam_from_world)
    T_final = (res.T_cam_from_world if res.T_cam_from_world is not None
               else res.extras.get("T_rejected"))  # fmt: skip
    row["mtre_header_start_mm"] = err(T_header)[0]
    row["mtre_mm"] = e3
    row["mtre_of_rejected_mm"] = err(res.extras.get("T_rejected"))[0]
    # the bone centre's distance from the source at the true pose (depth bias)
    row["true_centre_depth_mm"] = float((shot.T_true[:3, :3] @ run.box.centre
                                         + shot.T_true[:3, 3])[2])  # fmt: skip
    if not run.st.network_only:
        run.per["refine"].append(e3)
        run.pde["refine"].append(e2)
        e3c, e2c = err(T_final)
        run.per["refine_unchecked"].append(e3c)
        run.pde["refine_unchecked"].append(e2c)
    e3n, e2n = err(res.T_pnp)
    row["pnp_error_parts"] = error_parts(res.T_pnp, shot.T_true, run.box.centre)
    row["error_parts"] = error_parts(T_final, shot.T_true, run.box.centre)
    run.per["no_refine"].append(e3n)
    run.pde["no_refine"].append(e2n)
    if run.st.runs_refine_only:
        _refine_only(run, i, shot, err)
    return res, e3n, e3


def _shot_line(run: _CtRun, name: str, i: int, res, e3n, e3) -> str:
    unchecked = run.per["refine_unchecked"][-1] if run.per["refine_unchecked"] else None
    rough = run.per["refine_only"][-1] if run.per["refine_only"] else None
    return (
        f"[{name}] {i + 1}/{run.st.n_images} {run.kinds[-1]:7s} {res.status:6s} mTRE pnp "
        f"{fmt(e3n)} refined {fmt(e3)} (from {run.per_image[-1]['refined_from']}, "
        f"unchecked {fmt(unchecked)}) refine-only {fmt(rough)}"
        f" mm  {res.seconds:.2f} s  {res.message if res.status != 'ok' else ''}"
    )


def fmt(x) -> str:
    """Two decimals; ``-`` for None or a non-finite value."""
    return "-" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:.2f}"


def _ct_report(run: _CtRun, ct_path: Path, name: str, train_info: dict) -> dict:
    """One CT's part of the report (README: ``bench_registration`` JSON, ``cts[]``)."""
    st, per, pde = run.st, run.per, run.pde
    conf = {"network_only" if st.network_only else "refine": confusion(run.per_image)}
    if st.runs_refine_only:
        conf["refine_only"] = confusion([p["refine_only"] for p in run.per_image])
    starts = [p.get("refined_from") for p in run.per_image]
    return {
        "ct": str(ct_path),
        "header_start": st.header_start,
        "exposure": "fixed dose 4e3-6e4" if st.fixed_dose else "AEC set point 1e3-1e4",
        "refined_from_counts": {k: starts.count(k) for k in set(starts) if k},
        "self_check_confusion": conf,
        "error_parts_median_abs": parts_median(run.per_image),
        "name": name,
        "ct_shape": list(run.volume.shape),
        "model": train_info,
        "camera": run.cam.to_json(),
        "image_kinds": run.kinds,
        "per_image": run.per_image,
        "optimise_depth": st.optimise_depth,
        "registration_options": {k: v for k, v in run.ropts.items() if k != "device"},
        "per_image_mtre": per,
        "per_image_projected_mm": pde,
        "summary": {m: summarise([x if x is not None else math.inf for x in v])
                    for m, v in per.items() if v},  # fmt: skip
        "projected_distance_mm": {
            m: {"median": float(np.median([x for x in v if x is not None]))
                if any(x is not None for x in v) else None}
            for m, v in pde.items() if v
        },  # fmt: skip
        "seconds_per_image": {k: {"mean": float(np.mean(v)), "median": float(np.median(v))}
                              for k, v in run.stages.items()},  # fmt: skip
    }


def bench_ct(ct_path: Path, name: str, volume, model, train_info: dict, st: InDistSettings,
             device: str, log: Callable[[str], object]) -> dict:  # fmt: skip
    """Register ``st.n_images`` held-out shots of one CT, logging a line per shot."""
    cam = heldout.bench_camera()
    renderer = DrrRenderer(volume, device=device, bone_threshold_hu=model.bone_threshold_hu)
    norm = model.meta["normalisation"]
    box = BoneBox(np.asarray(norm["centre_lps_mm"]), np.asarray(norm["half_extent_mm"]))
    run = _CtRun(st, volume, model, renderer, cam, box, st.registration_options(device))
    sampler = PoseSampler(box, cam)
    rng = np.random.default_rng(st.seed + HELDOUT_STREAM_OFFSET)  # never in training
    all_bone = bone_points(volume, model.bone_threshold_hu, max_points=20000, seed=1)
    _warm_up(run)
    for i in range(st.n_images):
        shot = simulate_heldout_shot(renderer, cam, sampler, rng, all_bone, index=i,
                                     seed=st.seed, closeup_share=st.closeup_share,
                                     fixed_dose=st.fixed_dose)  # fmt: skip
        T_header = heldout.header_start_pose(shot.info, rng, box.centre) if st.header_start else None
        res, e3n, e3 = _one_shot(run, i, shot, T_header)
        log(_shot_line(run, name, i, res, e3n, e3))
    return _ct_report(run, ct_path, name, train_info)


def run_in_distribution(cts: list[Path], st: InDistSettings, device: str, *,
                        name_of: Callable[[Path], str], load: Callable[[Path], object],
                        get_model: Callable[[Path, object], tuple],
                        log: Callable[[str], object]) -> dict:  # fmt: skip
    """The in-distribution report: run settings, the machine, every CT (loaded by ``load``,
    its model from ``get_model``, one after the other) and the mTRE pooled over CTs."""
    report = {
        "n_images_per_ct": st.n_images,
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
        volume = load(ct)
        model, train_info = get_model(ct, volume)
        report["cts"].append(bench_ct(ct, name_of(ct), volume, model, train_info, st, device, log))
    report["machine"]["load_average_end"] = list(os.getloadavg())
    pooled = {}
    for mode in MODES:
        errs = [e for c in report["cts"] for e in c["per_image_mtre"].get(mode, [])]
        if errs:
            pooled[mode] = summarise([x if x is not None else math.inf for x in errs])
    report["pooled"] = pooled
    return report
