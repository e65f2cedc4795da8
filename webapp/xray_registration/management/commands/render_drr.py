"""``manage.py render_drr``: one DRR in line-integral form plus its timing JSON.

Contract (docs/CONVENTIONS.md): ``--ct PATH --camera camera.json --pose pose.json
--out DRR.npy [--repeat N] [--device cpu|cuda]`` writes float32 (H, W) ``DRR.npy`` and
beside it ``DRR.json`` = ``{"seconds_per_image", "samples_per_ray", "device"}``
(median over N renders after one warm-up). Both files are written atomically.
"""

from __future__ import annotations

import io
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from django.core.management.base import BaseCommand, CommandError

from webapp.xray_registration.management.commands._regio import (
    check_device,
    load_camera_or_fail,
    load_ct_or_fail,
    load_pose_or_fail,
    one_line,
)


def _write_atomic(path: Path, payload: bytes) -> str:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return tmp


def timing_path(out: Path) -> Path:
    """``DRR.npy`` -> ``DRR.json`` (same folder, same stem)."""
    return out.with_suffix(".json") if out.suffix else out.with_name(out.name + ".json")


class Command(BaseCommand):
    help = "Render a DRR (line-integral form, float32 .npy) of a CT for a camera and a pose."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--ct", required=True, help="DICOM series folder, .zip or NIfTI")
        parser.add_argument("--camera", required=True, help="camera.json")
        parser.add_argument("--pose", required=True, help="pose.json with T_cam_from_world")
        parser.add_argument("--out", required=True, help="output DRR .npy")
        parser.add_argument("--repeat", type=int, default=1, help="timed renders (>= 1)")
        parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
        parser.add_argument(
            "--samples-per-ray",
            type=int,
            default=256,
            dest="samples_per_ray",
            help="upper bound of samples per ray (default 256; the JSON reports the number used)",
        )

    def handle(self, *args, **opts) -> None:
        from registration.engine.drr import DrrRenderer

        repeat = opts["repeat"]
        if repeat < 1:
            raise CommandError(f"--repeat must be at least 1, got {repeat}")
        samples = opts["samples_per_ray"]
        if samples < 1:
            raise CommandError(f"--samples-per-ray must be at least 1, got {samples}")
        device = check_device(opts["device"])
        out = Path(opts["out"])
        if out.exists() and out.is_dir():
            raise CommandError(f"--out {out} is a folder, expected a .npy file path")
        if not out.parent.exists():
            raise CommandError(f"output folder does not exist: {out.parent}")

        camera = load_camera_or_fail(opts["camera"])
        T = load_pose_or_fail(opts["pose"])
        volume = load_ct_or_fail(opts["ct"])

        try:
            renderer = DrrRenderer(volume, device=device)
            T_t = torch.as_tensor(T, dtype=torch.float32, device=device)
            K_t = torch.as_tensor(np.array(camera.K), dtype=torch.float32, device=device)

            def once() -> torch.Tensor:
                with torch.no_grad():
                    img = renderer.render(
                        T_t, K_t, camera.height, camera.width, samples_per_ray=samples
                    )
                if device == "cuda":
                    torch.cuda.synchronize()
                return img

            image = once()  # warm-up
            times = []
            for _ in range(repeat):
                t0 = time.perf_counter()
                image = once()
                times.append(time.perf_counter() - t0)
        except (ValueError, RuntimeError) as exc:
            raise CommandError(f"rendering failed: {one_line(exc)}") from exc

        drr = image[0].detach().cpu().numpy().astype(np.float32)
        if not np.all(np.isfinite(drr)):
            raise CommandError("rendering produced non-finite values")
        buf = io.BytesIO()
        np.save(buf, drr)
        meta = {
            "seconds_per_image": float(statistics.median(times)),
            # samples actually taken per ray (the planes scheme samples each CT slice once,
            # so this is min(--samples-per-ray, slices crossed along the marching axis))
            "samples_per_ray": int(renderer.last_samples_per_ray or samples),
            "device": device,
        }
        json_path = timing_path(out)
        tmp_npy = tmp_json = None
        try:
            tmp_npy = _write_atomic(out, buf.getvalue())
            tmp_json = _write_atomic(json_path, (json.dumps(meta, indent=2) + "\n").encode())
            os.replace(tmp_npy, out)
            tmp_npy = None
            os.replace(tmp_json, json_path)
            tmp_json = None
        except OSError as exc:
            raise CommandError(f"cannot write {out}: {one_line(exc)}") from exc
        finally:
            for tmp in (tmp_npy, tmp_json):
                if tmp:
                    Path(tmp).unlink(missing_ok=True)
        if float(drr.max()) == 0.0:
            self.stderr.write("warning: the DRR is empty (the CT is not in the camera's view)")
        self.stdout.write(
            f"DRR {camera.width}x{camera.height} written to {out} "
            f"({meta['seconds_per_image'] * 1000:.1f} ms per image on {device})"
        )
