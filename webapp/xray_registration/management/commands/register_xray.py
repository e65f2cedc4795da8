"""Register one X-ray to a CT, with a trained per-patient model or (without --model) in
training-free mode: the DRR library and the given initial pose as starts, no network."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from django.core.management.base import BaseCommand, CommandError

from dicomio.errors import InputRefused
from registration.engine.stored_image import camera_for_stored_image
from webapp.xray_registration.management.commands._regio import (
    check_device,
    load_camera_or_fail,
    load_ct_or_fail,
    load_pose_or_fail,
    one_line,
    write_json_atomic,
)


class Command(BaseCommand):
    help = (
        "Register an X-ray (DICOM XA/RF/DX/CR or 8/16-bit PNG, dewarped) to the CT with a model "
        "from train_registration_model, or without --model in training-free mode (a library "
        "of DRRs of the CT and --init as starts; result.json says so in its message and in "
        "stages.start.mode), and write result.json (status, message, "
        "T_cam_from_world, seconds, stages, n_correspondences, n_inliers, similarity). "
        "For a PNG --camera is required; for DICOM it overrides the header geometry. "
        "Exit codes: bad input (missing/unreadable CT, model, image or JSON, model of another "
        "CT, CUDA unavailable) -> non-zero, one-line message on stderr, no output file. A "
        "well-formed run whose self-checks fail (no bone recognised, too few inliers, poor "
        "similarity) writes result.json with status 'failed' and the reason in 'message', "
        "and exits 0."
    )

    def add_arguments(self, parser):
        parser.add_argument("--ct", required=True)
        parser.add_argument("--model", help="model directory (omit: training-free mode)")
        parser.add_argument("--xray", required=True, help="DICOM or PNG X-ray")
        parser.add_argument("--camera", help="camera.json (required for PNG)")
        parser.add_argument("--out", required=True, help="result.json to write")
        parser.add_argument("--init", help="pose.json with an initial T_cam_from_world")
        parser.add_argument("--no-refine", action="store_true", help="skip intensity refinement")
        parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])

    def handle(self, *args, **opts):
        from dicomio import read_xray
        from registration.engine.model_io import ModelError, ct_fingerprint, load_model
        from registration.engine.pipeline import RegistrationOptions
        from registration.engine.stored_image import register_stored

        t0 = time.perf_counter()
        device = check_device(opts["device"])
        camera = load_camera_or_fail(opts["camera"]) if opts.get("camera") else None
        T_init = load_pose_or_fail(opts["init"]) if opts.get("init") else None
        try:
            xray = read_xray(opts["xray"])
        except InputRefused as exc:
            raise CommandError(f"cannot read the X-ray: {one_line(exc)}") from exc
        except (OSError, ValueError) as exc:
            raise CommandError(f"cannot read the X-ray {Path(opts['xray']).name}: {one_line(exc)}") from exc
        try:
            camera = camera_for_stored_image(camera, xray)
        except InputRefused as exc:
            raise CommandError(exc.message) from exc
        model = None
        if opts.get("model"):
            try:
                model = load_model(opts["model"], device=device)
            except ModelError as exc:
                raise CommandError(one_line(exc)) from exc
        t_load = time.perf_counter()
        volume = load_ct_or_fail(opts["ct"])
        fp = model.meta.get("ct_fingerprint") if model is not None else None
        if fp and fp != ct_fingerprint(volume.array, volume.affine):
            raise CommandError("the model was trained on a different CT (fingerprint mismatch)")
        t_ct = time.perf_counter() - t_load
        options = RegistrationOptions(refine=not opts["no_refine"], device=device)
        try:
            res = register_stored(
                volume, model, xray.pixels, xray.photometric, camera,
                bits_stored=xray.bits_stored, T_init=T_init, options=options,
            )
        except ValueError as exc:
            raise CommandError(f"cannot register the X-ray: {one_line(exc)}") from exc
        out = res.to_json()
        out["stages"] = {"load": {"seconds": round(t_ct, 4)}, **out["stages"]}
        out["seconds"] = float(time.perf_counter() - t0)
        if not np.isfinite(out["seconds"]):
            out["seconds"] = 0.0
        try:
            write_json_atomic(opts["out"], out)
        except OSError as exc:
            raise CommandError(f"cannot write {opts['out']}: {one_line(exc)}") from exc
        self.stdout.write(f"{res.status}: {res.message} ({out['seconds']:.2f} s)")
