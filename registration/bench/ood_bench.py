"""The out-of-distribution benchmark of ``bench_registration --heldout ood``: per CT, write
(or reuse) the seeded shots, register each in every mode through the product's path, and
report per mode, kind and CT (:mod:`registration.bench.report`)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from registration.bench import ood_run, report
from registration.bench.ood_shots import OodShot, bone_points, generate_shots

#: the CTs of the OOD benchmark under ../shared/data: every CT we have, one of each
OOD_CTS = ("ct/pelvis_bone_001", "ct/pelvis_bone_002", "ct/abdomen_pelvis_totalseg_sm.nii.gz",
           "dicom/ct_series_spine_philips")


def default_ood_cts(shared_data: Path) -> list[Path]:
    return [shared_data / p for p in OOD_CTS if (shared_data / p).exists()]


def shots_for_ct(volume, name: str, shots_dir: Path, n: int, seed: int,
                 log: Callable[[str], None], n_samples: int = 192) -> list[OodShot]:
    """The CT's shots, rendered into ``shots_dir/<name>_seed<seed>_n<n>`` (reused when its
    manifest is complete: same seed, count and CT shape); ``n_samples`` per ray."""
    from registration.bench import ood_poses, xray_chain

    d = Path(shots_dir) / f"{name}_seed{seed}_n{n}"
    man = d / "shots.json"
    if man.is_file():
        try:
            data = json.loads(man.read_text())
        except (OSError, json.JSONDecodeError):
            data = {}
        if data.get("ct_shape") == list(volume.shape) and len(data.get("shots", [])) == n:
            log(f"[{name}] reusing {n} shots in {d}")
            return [_shot_from_manifest(d, s, ood_poses, xray_chain) for s in data["shots"]]
    shots = generate_shots(volume, name, d, n, seed, n_samples=n_samples,
                           log=lambda m: log(f"[{name}] {m}"))
    rows = []
    for s in shots:
        m = s.manifest()
        m["targets_lps_mm"] = np.round(s.targets, 3).tolist()
        rows.append(m)
    tmp = man.with_name("shots.json.part")
    tmp.write_text(json.dumps({"ct_shape": list(volume.shape), "seed": seed,
                               "samples_per_ray": n_samples, "shots": rows}))
    tmp.replace(man)
    return shots


def _shot_from_manifest(d: Path, s: dict, ood_poses, xray_chain) -> OodShot:
    cam = json.loads((d / s["camera"]).read_text())
    g = ood_poses.ShotGeometry(
        s["family"], s["kind"] == "closeup", s["lao_deg"], s["cranial_deg"], s["spin_deg"],
        s["sid_mm"], s["sdd_mm"], np.asarray(s["isocentre_lps_mm"]), np.asarray(cam["K"]),
        cam["width"], cam["height"], cam["pixel_spacing_mm"][0],
        np.asarray(s["T_cam_from_world"]), s["window"])
    c = dict(s["chain"])
    c["blades"] = tuple(c["blades"])
    return OodShot(s["index"], d / s["file"], d / s["camera"], s["format"], s["modality"],
                   s["photometric"], g, xray_chain.ChainParams(**c),
                   np.asarray(s["targets_lps_mm"], np.float64))


def run_ood(cts: list[tuple[str, object, Path]], modes: list[str], *, n: int, seed: int,
            shots_dir: Path, device: str, get_model: Callable[[Path, object], object],
            log: Callable[[str], None]) -> dict:
    """``cts``: (name, CTVolume, path) triples. ``get_model(path, volume)`` returns the
    loaded model for the ``model`` mode. Returns the ``ood`` part of the JSON report."""
    from registration.engine.drr import DrrRenderer

    rows: list[dict] = []
    per_ct = []
    for name, volume, path in cts:
        shots = shots_for_ct(volume, name, shots_dir, n, seed, log)
        centre = np.median(bone_points(volume.array, volume.affine, seed=seed), axis=0)
        model = get_model(path, volume) if "model" in modes else None
        renderer = DrrRenderer(volume, device=device,
                               **({"bone_threshold_hu": model.bone_threshold_hu} if model else {}))
        model_centre = (np.asarray(model.meta["normalisation"]["centre_lps_mm"])
                        if model is not None else centre)
        for mode in modes:
            for shot in shots:
                row = ood_run.register_shot(
                    volume, model, shot, mode,
                    centre_lps=model_centre if mode == "model" else centre,
                    seed=seed, renderer=renderer, device=device)
                row["ct"] = name
                rows.append(row)
                log(f"[{name}] {mode} {shot.index + 1}/{len(shots)} {row['kind']:8s} "
                    f"{row['format']:5s} {row['display']:6s} {row['status']:6s} mTRE "
                    f"{_f(row['mtre_mm'])} (rejected {_f(row['mtre_of_rejected_mm'])}) mm "
                    f"{row['seconds']['total']:.2f} s {row['message'] if row['status'] != 'ok' else ''}")
        per_ct.append({"name": name, "ct": str(path), "ct_shape": list(volume.shape),
                       "shots": [s.manifest() for s in shots]})
    return {"modes": modes, "n_images_per_ct": n, "seed": seed, "cts": per_ct, "rows": rows,
            "report": report.report(rows)}


def _f(x) -> str:
    return "-" if x is None else f"{x:.2f}"
