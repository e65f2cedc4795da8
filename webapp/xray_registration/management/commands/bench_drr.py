"""``manage.py bench_drr``: DRR speed against the independent nanodrr renderer.

For each device (CPU, and CUDA when available) and image size (128², 256², 512² by
default) it renders the same pose with our renderer (default "planes" scheme, "planes"
with exactly ``--samples-per-ray`` planes ("exact"), and the "rays" scheme) and with nanodrr (when installed) in the same run, and reports
milliseconds per DRR (median of ``--repeat`` timed renders after one warm-up, divided by
the batch size), the speed ratio (nanodrr time / our time) and the normalised
cross-correlation (NCC) between the images. Image quality of each renderer is also
measured against a high-sample reference (our "rays" scheme with 1024 samples per ray) at
the sizes up to ``--quality-max-size``. nanodrr is timed twice: with ``--samples-per-ray``
and with the number of samples our planes scheme actually took ("nano@spr"), the
equal-sampling comparison. Prints a table and writes JSON (default
``bench_out/bench_drr.json``, atomic write). The measurements live in
:mod:`registration.bench.drr_speed`; this command parses options, picks the CT, prints
and writes.
"""

from __future__ import annotations

import json
import os
import platform
import tempfile
from pathlib import Path

import torch
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from registration.bench.drr_speed import (
    POSE,
    SOURCE_TO_DETECTOR_MM,
    DrrBenchSettings,
    run_drr_bench,
    synthetic_ct,
)


def _devices(asked: str) -> list[str]:
    """The devices to time: CPU and CUDA for ``all`` (CUDA only when available)."""
    devices = ["cpu", "cuda"] if asked == "all" else [asked]
    if "cuda" in devices and not torch.cuda.is_available():
        if asked == "cuda":
            raise CommandError("--device cuda requested but no CUDA GPU is available")
        devices = ["cpu"]
    return devices


def _volume(ct_path: str | None):
    """(volume, name): the given CT, else the shared pelvis CT, else a synthetic phantom."""
    if ct_path is None:
        default = Path(settings.ORTHOFUSE_SHARED_DATA) / "ct" / "abdomen_pelvis_totalseg.nii.gz"
        ct_path = str(default) if default.exists() else None
    if ct_path is None:
        return synthetic_ct(), "synthetic phantom"
    if not Path(ct_path).exists():
        raise CommandError(f"CT not found: {ct_path}")
    try:
        from dicomio import load_ct

        volume = load_ct(Path(ct_path))
    except (ValueError, OSError) as exc:
        raise CommandError(f"cannot load the CT: {str(exc).splitlines()[0]}") from exc
    return volume, Path(ct_path).name


def _write_json(out: Path, result: dict) -> None:
    """Atomic write of the result (indented JSON)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(result, fh, indent=2)
        os.replace(tmp, out)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise CommandError(f"cannot write {out}: {exc}") from exc


class Command(BaseCommand):
    help = "Benchmark DRR rendering (ms per image) against the independent nanodrr renderer."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--json", default="bench_out/bench_drr.json", help="output JSON")
        parser.add_argument("--device", choices=["cpu", "cuda", "all"], default="all")
        parser.add_argument("--ct", default=None, help="CT (DICOM folder, zip, NIfTI)")
        parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256, 512])
        parser.add_argument("--repeat", type=int, default=3)
        parser.add_argument("--samples-per-ray", type=int, default=256, dest="samples")
        parser.add_argument(
            "--batch", type=int, default=None, help="poses per call (default 1 on CPU, 16 on CUDA)"
        )
        parser.add_argument("--quality-max-size", type=int, default=256, dest="quality_max")
        parser.add_argument("--no-reference", action="store_true", help="skip nanodrr")
        parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")

    def handle(self, *args, **opts) -> None:
        from registration.engine import reference_drr

        if opts["threads"] is not None:
            if opts["threads"] < 1:
                raise CommandError("--threads must be at least 1")
            torch.set_num_threads(opts["threads"])
        if opts["repeat"] < 1:
            raise CommandError("--repeat must be at least 1")
        if any(s < 8 or s > 4096 for s in opts["sizes"]):
            raise CommandError("--sizes must be between 8 and 4096")
        devices = _devices(opts["device"])
        have_ref = (not opts["no_reference"]) and reference_drr.available()
        volume, ct_name = _volume(opts["ct"])
        st = DrrBenchSettings(sizes=opts["sizes"], samples=opts["samples"], repeat=opts["repeat"],
                              batch=opts["batch"], quality_max=opts["quality_max"],
                              reference=have_ref)  # fmt: skip
        rows = run_drr_bench(volume, devices, st, self.stdout.write)
        result = {
            "ct": ct_name,
            "ct_shape_kji": list(volume.shape),
            "ct_spacing_mm": [float(x) for x in volume.spacing],
            "pose": dict(POSE),
            "source_to_detector_mm": SOURCE_TO_DETECTOR_MM,
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "cpu_count": os.cpu_count(),
            "machine": platform.machine(),
            "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
            "cuda_device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "reference": "nanodrr 0.1.7 (torch grid_sample backend)" if have_ref else None,
            "results": rows,
        }
        out = Path(opts["json"])
        _write_json(out, result)
        self.stdout.write(f"wrote {out}")
