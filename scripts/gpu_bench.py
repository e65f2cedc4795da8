"""Registration speed and accuracy on a GPU, without Django: the device check of issue 5.

Trains the quick network for ``--train-minutes`` on ``--device``, then registers
``--n-images`` held-out simulated shots (the shots of ``bench_registration`` for the same
seed, with the header-angle start) on the same device and reports seconds per image per
stage and the 3D mTRE. Prints a table and writes JSON. Runs on a CPU too (``--device cpu``),
which is how it is tested.

A lent GPU machine has Python 3.12 with torch, numpy, scipy and OpenCV but neither Django
nor the DICOM/NIfTI readers, which this script does not need beyond ``nibabel`` and
``pydicom``. Prepare once in the checkout (both folders are git-ignored):

    python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
        --implementation cp --platform manylinux2014_x86_64 -d .whl nibabel==5.4.2 pydicom==3.0.2
    mkdir -p gpu_data && cp -r ../shared/data/ct/pelvis_bone_002 gpu_data/

and run it there with ``carry: [".whl", "gpu_data"]``:

    python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl \
      && export PYTHONPATH=/tmp/site:. PYTHONUNBUFFERED=1 \
      && python3 scripts/gpu_bench.py --ct gpu_data/pelvis_bone_002 --device cuda \
           --train-minutes 4 --n-images 20 --json $OUT/gpu_bench.json
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from geometry.carm import carm_pose
from geometry.rigid import target_error_mm
from registration.engine.dataset import BoneBox, PoseSampler, bone_points  # noqa: E402
from registration.engine.drr import DrrRenderer  # noqa: E402
from registration.engine.model_io import LoadedModel  # noqa: E402
from registration.engine.pipeline import RegistrationOptions, register  # noqa: E402
from registration.engine.training import clock_bounded, get_preset, train_model  # noqa: E402
from simulation.heldout import (  # noqa: E402
    HELDOUT_STREAM_OFFSET,
    bench_camera,
    header_start_pose,
    load_bench_ct,
    simulate_heldout_shot,
    summarise,
)
from webapp.env import training_overrides  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ct", required=True, help="a NIfTI/DICOM CT or a pelvis_bone_* folder")
    ap.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    ap.add_argument("--preset", default="quick", choices=["quick", "standard", "full"])
    ap.add_argument("--train-minutes", type=float, default=4.0)
    ap.add_argument("--n-images", type=int, default=20)
    ap.add_argument("--seed", type=int, default=1000)
    ap.add_argument("--closeup-share", type=float, default=0.3)
    ap.add_argument("--json", default="bench_out/gpu_bench.json")
    args = ap.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        ap.error("--device cuda: no CUDA GPU is available")
    if not 0 < args.train_minutes <= 600:
        ap.error("--train-minutes must be in (0, 600]")
    if args.n_images < 1:
        ap.error("--n-images must be >= 1")
    if not Path(args.ct).exists():
        ap.error(f"CT not found: {args.ct}")
    return args


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def run(args: argparse.Namespace) -> dict:
    device = args.device
    volume = load_bench_ct(Path(args.ct))
    cam = bench_camera()
    preset = clock_bounded(get_preset(args.preset, training_overrides()), args.train_minutes)
    t0 = time.perf_counter()
    tr = train_model(volume, cam, preset=preset, seed=0, device=device,
                     log=lambda m: print(f"[train] {m}", flush=True))
    train_s = time.perf_counter() - t0
    net = tr.net.to(device).eval()
    model = LoadedModel(net=net, meta=tr.meta, path=Path("."))
    renderer = DrrRenderer(volume, device=device, bone_threshold_hu=model.bone_threshold_hu)
    norm = tr.meta["normalisation"]
    box = BoneBox(np.asarray(norm["centre_lps_mm"]), np.asarray(norm["half_extent_mm"]))
    sampler = PoseSampler(box, cam)
    rng = np.random.default_rng(args.seed + HELDOUT_STREAM_OFFSET)
    all_bone = bone_points(volume, model.bone_threshold_hu, max_points=20000, seed=1)
    options = RegistrationOptions(device=device)
    # one untimed registration: kernels and caches are set up on the first call
    T_warm = carm_pose(0.0, 0.0, 0.65 * cam.source_to_detector_mm, box.centre)
    warm = renderer.render_numpy(cam, T_warm, samples_per_ray=64)
    register(volume, model, warm, np.ones_like(warm, bool), cam, T_init=T_warm,
             options=options, renderer=renderer)
    rows = []
    for i in range(args.n_images):
        shot = simulate_heldout_shot(renderer, cam, sampler, rng, all_bone, index=i,
                                     seed=args.seed, closeup_share=args.closeup_share)
        T_header = header_start_pose(shot.info, rng, box.centre)
        _sync(device)
        t = time.perf_counter()
        res = register(volume, model, shot.image, shot.valid, shot.camera, T_init=T_header,
                       options=options, renderer=renderer)
        _sync(device)
        seconds = time.perf_counter() - t

        def mtre(T, shot=shot) -> float:
            return math.inf if T is None else float(
                target_error_mm(shot.targets, T, shot.T_true).mean())

        rows.append({"kind": shot.kind, "status": res.status, "message": res.message,
                     "seconds": seconds, "mtre_mm": mtre(res.T_cam_from_world),
                     "pnp_mtre_mm": mtre(res.T_pnp),
                     "stages": {k: v.get("seconds") for k, v in res.stages.items()}})
        print(f"{i + 1}/{args.n_images} {shot.kind:7s} {res.status:6s} "
              f"pnp {rows[-1]['pnp_mtre_mm']:.2f} refined {rows[-1]['mtre_mm']:.2f} mm "
              f"{seconds:.3f} s", flush=True)
    stage_names = sorted({k for r in rows for k in r["stages"]})
    return {
        "device": device,
        "gpu": torch.cuda.get_device_name(0) if device == "cuda" else None,
        "torch": torch.__version__,
        "ct": str(args.ct),
        "preset": args.preset,
        "training": {"seconds": train_s, "steps": tr.meta["training"]["steps_done"],
                     "final_median_error_mm": tr.meta["training"]["final_median_error_mm"]},
        "summary": {"refined": summarise([r["mtre_mm"] for r in rows]),
                    "network_pnp": summarise([r["pnp_mtre_mm"] for r in rows])},
        "seconds_per_image": {
            "total_mean": float(np.mean([r["seconds"] for r in rows])),
            "total_median": float(np.median([r["seconds"] for r in rows])),
            **{k: float(np.mean([r["stages"].get(k) or 0.0 for r in rows])) for k in stage_names},
        },
        "per_image": rows,
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    report = run(args)
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1, default=float))
    s, sec = report["summary"], report["seconds_per_image"]
    print(f"\ndevice {report['device']} ({report['gpu'] or 'CPU'}), torch {report['torch']}, "
          f"{report['training']['steps']} training steps in {report['training']['seconds']:.0f} s")
    for name in ("network_pnp", "refined"):
        m = s[name]
        print(f"{name:12s} n {m['n']:3d}  median {m['median_mm']}  best half "
              f"{m['best_half_mean_mm']}  fail>10 {m['failure_rate_over_10mm']:.0%}")
    print("seconds/image (mean): " + ", ".join(f"{k} {v:.3f}" for k, v in sec.items()))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
