"""Train the per-patient scene-coordinate network for one CT and one C-arm camera."""

from __future__ import annotations

import sys

from django.core.management.base import BaseCommand, CommandError

from webapp.xray_registration.management.commands._regio import (
    check_device,
    load_camera_or_fail,
    load_ct_or_fail,
    one_line,
)


class Command(BaseCommand):
    help = (
        "Train a registration model on simulated X-rays of one CT. PATH is a DICOM series "
        "folder, a .zip of one, or a NIfTI file; camera.json is the C-arm's dewarped pinhole "
        "camera. MODEL_DIR receives weights.pt and model.json (written atomically). Presets: "
        "quick (2-core CPU, <= 20 min), standard, full (GPU). The environment variables "
        "ORTHOFUSE_TRAIN_STEPS / ORTHOFUSE_TRAIN_POOL / ORTHOFUSE_TRAIN_SIZE / "
        "ORTHOFUSE_TRAIN_MAX_SECONDS override the preset (tests, demos). Exit 0 on success; "
        "non-zero with a one-line message on stderr on failure."
    )

    def add_arguments(self, parser):
        parser.add_argument("--ct", required=True, help="DICOM folder, .zip, or NIfTI file")
        parser.add_argument("--camera", required=True, help="camera.json")
        parser.add_argument("--out", required=True, help="model directory to write")
        parser.add_argument("--preset", default="quick", choices=["quick", "standard", "full"])
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])

    def handle(self, *args, **opts):
        import torch

        from registration.engine.dataset import NoBoneError
        from registration.engine.model_io import ct_fingerprint, save_model, versions
        from registration.engine.training import get_preset, train_model
        from webapp.env import training_overrides

        device = check_device(opts["device"])
        volume = load_ct_or_fail(opts["ct"])
        camera = load_camera_or_fail(opts["camera"])
        try:
            preset = get_preset(opts["preset"], training_overrides())
        except ValueError as exc:
            raise CommandError(one_line(exc)) from exc
        if device == "cpu":
            torch.set_num_threads(max(1, min(torch.get_num_threads(), 4)))
        verbosity = int(opts.get("verbosity", 1))

        def log(msg: str) -> None:
            if verbosity >= 1:
                self.stdout.write(msg)
                sys.stdout.flush()

        log(f"training preset {preset.name}: {preset.steps} steps at {preset.input_size} px on {device}")
        try:
            result = train_model(volume, camera, preset=preset, seed=opts["seed"], device=device, log=log)
        except NoBoneError as exc:
            raise CommandError(one_line(exc)) from exc
        except ValueError as exc:
            raise CommandError(f"training failed: {one_line(exc)}") from exc
        meta = result.meta
        meta["ct_fingerprint"] = ct_fingerprint(volume.array, volume.affine)
        meta["ct_shape"] = list(volume.shape)
        meta["versions"] = versions()
        try:
            out = save_model(opts["out"], result.net, meta)
        except OSError as exc:
            raise CommandError(f"cannot write the model to {opts['out']}: {one_line(exc)}") from exc
        tr = meta["training"]
        err = tr.get("final_median_error_mm")
        log(
            f"model written to {out} ({tr['steps_done']} steps, {tr['seconds']:.0f} s, "
            f"median scene-coordinate error {err:.1f} mm)" if err is not None else f"model written to {out}"
        )
