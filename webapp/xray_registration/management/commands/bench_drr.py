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
``bench_out/bench_drr.json``, atomic write).
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np
import torch
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError


def _ncc(a: np.ndarray, b: np.ndarray) -> float:
    a = a.astype(np.float64).ravel() - a.mean()
    b = b.astype(np.float64).ravel() - b.mean()
    den = np.sqrt((a @ a) * (b @ b))
    return float(a @ b / den) if den > 0 else float("nan")


def _rel_err(a: np.ndarray, ref: np.ndarray) -> float:
    """Mean absolute error relative to the reference's mean (in %)."""
    return float(100.0 * np.abs(a - ref).mean() / max(float(np.abs(ref).mean()), 1e-12))


def _time_round_robin(renders: dict, repeat: int, batch: int, sync) -> tuple[dict, dict]:
    """Median milliseconds per image of each render function, timed in turn (round robin,
    so that all see the same machine load), after one warm-up each; and their images."""
    times: dict = {name: [] for name in renders}
    images: dict = {}
    with torch.no_grad():
        for name, fn in renders.items():
            images[name] = fn()
            sync()
        for _ in range(repeat):
            for name, fn in renders.items():
                t0 = time.perf_counter()
                fn()
                sync()
                times[name].append(time.perf_counter() - t0)
    ms = {name: statistics.median(t) / batch * 1000.0 for name, t in times.items()}
    return ms, {name: img[0].float().cpu().numpy() for name, img in images.items()}


def _synthetic_ct():
    """Small abdomen-like phantom (water ellipse with bone cylinders) when no CT is given."""
    from dicomio.volume import CTVolume

    k, j, i = np.mgrid[0:100, 0:128, 0:128].astype(np.float32)
    hu = np.full(k.shape, -1000.0, np.float32)
    body = ((i - 64) / 58) ** 2 + ((j - 64) / 42) ** 2 <= 1
    hu[body] = 30.0
    spine = ((i - 64) / 9) ** 2 + ((j - 85) / 9) ** 2 <= 1
    hu[spine] = 900.0
    for cx in (30, 98):
        hu[((i - cx) / 7) ** 2 + ((j - 64) / 7) ** 2 <= 1] = 1200.0
    affine = np.diag([2.5, 2.5, 3.0, 1.0])
    affine[:3, 3] = [-160.0, -160.0, -150.0]
    return CTVolume(hu, affine)


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
        from geometry.camera import Camera
        from geometry.carm import carm_pose
        from registration.engine import reference_drr
        from registration.engine.drr import DrrRenderer

        if opts["threads"] is not None:
            if opts["threads"] < 1:
                raise CommandError("--threads must be at least 1")
            torch.set_num_threads(opts["threads"])
        if opts["repeat"] < 1:
            raise CommandError("--repeat must be at least 1")
        if any(s < 8 or s > 4096 for s in opts["sizes"]):
            raise CommandError("--sizes must be between 8 and 4096")
        devices = ["cpu", "cuda"] if opts["device"] == "all" else [opts["device"]]
        if "cuda" in devices and not torch.cuda.is_available():
            if opts["device"] == "cuda":
                raise CommandError("--device cuda requested but no CUDA GPU is available")
            devices = ["cpu"]
        have_ref = (not opts["no_reference"]) and reference_drr.available()

        ct_path = opts["ct"]
        if ct_path is None:
            default = (
                Path(settings.BASE_DIR).parent
                / "shared"
                / "data"
                / "ct"
                / "abdomen_pelvis_totalseg.nii.gz"
            )
            ct_path = str(default) if default.exists() else None
        if ct_path is not None:
            if not Path(ct_path).exists():
                raise CommandError(f"CT not found: {ct_path}")
            try:
                from dicomio import load_ct

                volume = load_ct(Path(ct_path))
            except (ValueError, OSError) as exc:
                raise CommandError(f"cannot load the CT: {str(exc).splitlines()[0]}") from exc
            ct_name = Path(ct_path).name
        else:
            volume = _synthetic_ct()
            ct_name = "synthetic phantom"

        n = np.array(volume.shape[::-1], float)
        center = volume.voxel_to_world(((n - 1) / 2)[None])[0]
        extent = float(np.max(np.ptp(volume.corners_world(), axis=0)))
        T = carm_pose(20.0, 10.0, 600.0, center)
        rows = []
        for device in devices:
            batch = opts["batch"] or (16 if device == "cuda" else 1)
            sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
            ours = DrrRenderer(volume, device=device)
            ours_rays = DrrRenderer(volume, device=device, method="rays")
            ours_exact = DrrRenderer(volume, device=device, plane_sampling="exact")
            ref = (
                reference_drr.NanoDrrReference(ours.mu_volume, volume.affine, device=device)
                if have_ref
                else None
            )
            Ts = torch.as_tensor(np.repeat(T[None], batch, 0), dtype=torch.float32, device=device)
            for size in opts["sizes"]:
                # detector covering the volume at the isocentre (magnification 1000/600)
                spacing = 1.1 * extent * (1000.0 / 600.0) / size
                cam = Camera.from_geometry(size, size, 1000.0, spacing, spacing)
                K = torch.as_tensor(np.array(cam.K), dtype=torch.float32, device=device)

                renders = {
                    "ours": partial(
                        ours.render, Ts, K, size, size, samples_per_ray=opts["samples"]
                    ),
                    "ours_rays": partial(
                        ours_rays.render, Ts, K, size, size, samples_per_ray=opts["samples"]
                    ),
                    "ours_exact": partial(
                        ours_exact.render, Ts, K, size, size, samples_per_ray=opts["samples"]
                    ),
                }
                if ref is not None:
                    renders["nanodrr"] = partial(
                        ref.render,
                        Ts,
                        K,
                        size,
                        size,
                        source_to_detector_mm=1000.0,
                        samples_per_ray=opts["samples"],
                    )
                    # nanodrr with as many samples per ray as our planes scheme takes
                    with torch.no_grad():
                        ours.render(Ts[:1], K, size, size, samples_per_ray=opts["samples"])
                    renders["nanodrr_same_samples"] = partial(
                        ref.render,
                        Ts,
                        K,
                        size,
                        size,
                        source_to_detector_mm=1000.0,
                        samples_per_ray=max(2, ours.last_samples_per_ray),
                    )
                ms_of, images = _time_round_robin(renders, opts["repeat"], batch, sync)
                ms, img = ms_of["ours"], images["ours"]
                used = ours.last_samples_per_ray
                ms_rays, img_rays = ms_of["ours_rays"], images["ours_rays"]
                row = {
                    "device": device,
                    "size": size,
                    "batch": batch,
                    "samples_per_ray_requested": opts["samples"],
                    "ours_ms": ms,
                    "ours_samples_per_ray": used,
                    "ours_rays_ms": ms_rays,
                    "ncc_ours_vs_ours_rays": _ncc(img, img_rays),
                    "ours_exact_ms": ms_of["ours_exact"],
                    "ours_exact_samples_per_ray": ours_exact.last_samples_per_ray,
                }
                img_ref = images.get("nanodrr")
                if img_ref is not None:
                    ms_ref = ms_of["nanodrr"]
                    row.update(
                        {
                            "nanodrr_ms": ms_ref,
                            "ratio_nanodrr_over_ours": ms_ref / ms,
                            "ratio_nanodrr_over_ours_rays": ms_ref / ms_rays,
                            "ratio_nanodrr_over_ours_exact": ms_ref / ms_of["ours_exact"],
                            "ncc_ours_exact_vs_nanodrr": _ncc(images["ours_exact"], img_ref),
                            "ncc_ours_vs_nanodrr": _ncc(img, img_ref),
                            "ncc_ours_rays_vs_nanodrr": _ncc(img_rays, img_ref),
                            "nanodrr_same_samples_ms": ms_of["nanodrr_same_samples"],
                            "ratio_nanodrr_same_samples_over_ours": ms_of["nanodrr_same_samples"]
                            / ms,
                        }
                    )
                if size <= opts["quality_max"]:
                    with torch.no_grad():
                        hq = ours_rays.render(Ts[:1], K, size, size, samples_per_ray=1024)[0]
                    hq = hq.float().cpu().numpy()
                    row["quality_vs_rays1024"] = {
                        "ours": {"ncc": _ncc(img, hq), "mean_rel_err_pct": _rel_err(img, hq)},
                        "ours_rays": {
                            "ncc": _ncc(img_rays, hq),
                            "mean_rel_err_pct": _rel_err(img_rays, hq),
                        },
                        "ours_exact": {
                            "ncc": _ncc(images["ours_exact"], hq),
                            "mean_rel_err_pct": _rel_err(images["ours_exact"], hq),
                        },
                    }
                    if img_ref is not None:
                        row["quality_vs_rays1024"]["nanodrr"] = {
                            "ncc": _ncc(img_ref, hq),
                            "mean_rel_err_pct": _rel_err(img_ref, hq),
                        }
                        img_same = images["nanodrr_same_samples"]
                        row["quality_vs_rays1024"]["nanodrr_same_samples"] = {
                            "ncc": _ncc(img_same, hq),
                            "mean_rel_err_pct": _rel_err(img_same, hq),
                        }
                rows.append(row)
                self._print_row(row)

        result = {
            "ct": ct_name,
            "ct_shape_kji": list(volume.shape),
            "ct_spacing_mm": [float(x) for x in volume.spacing],
            "pose": {"lao_deg": 20.0, "cranial_deg": 10.0, "source_to_isocenter_mm": 600.0},
            "source_to_detector_mm": 1000.0,
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
        out.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
        try:
            with os.fdopen(fd, "w") as fh:
                json.dump(result, fh, indent=2)
            os.replace(tmp, out)
        except OSError as exc:
            Path(tmp).unlink(missing_ok=True)
            raise CommandError(f"cannot write {out}: {exc}") from exc
        self.stdout.write(f"wrote {out}")

    _header_printed = False

    def _print_row(self, row: dict) -> None:
        if not self._header_printed:
            self.stdout.write(
                f"{'device':<6} {'size':>5} {'batch':>5} {'ours ms':>9} {'(spr)':>6} "
                f"{'rays ms':>9} {'nanodrr ms':>11} {'ratio':>7} {'NCC':>9} "
                f"{'nano@spr ms':>12} {'ratio':>7} {'exact ms':>9} {'ratio':>7}"
            )
            self._header_printed = True
        nano = row.get("nanodrr_ms")
        nano_txt = f"{nano:.1f}" if nano is not None else "n/a"
        ratio_txt = f"{row['ratio_nanodrr_over_ours']:.2f}x" if nano is not None else "n/a"
        ncc_txt = f"{row['ncc_ours_vs_nanodrr']:.6f}" if nano is not None else "n/a"
        same = row.get("nanodrr_same_samples_ms")
        same_txt = f"{same:.1f}" if same is not None else "n/a"
        same_ratio = f"{same / row['ours_ms']:.2f}x" if same is not None else "n/a"
        exact_ratio = f"{nano / row['ours_exact_ms']:.2f}x" if nano is not None else "n/a"
        self.stdout.write(
            f"{row['device']:<6} {row['size']:>5} {row['batch']:>5} {row['ours_ms']:>9.1f} "
            f"{row['ours_samples_per_ray']:>6} {row['ours_rays_ms']:>9.1f} "
            f"{nano_txt:>11} {ratio_txt:>7} {ncc_txt:>9} {same_txt:>12} {same_ratio:>7} "
            f"{row['ours_exact_ms']:>9.1f} {exact_ratio:>7}"
        )
