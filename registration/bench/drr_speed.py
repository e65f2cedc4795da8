"""DRR speed and image agreement for ``bench_drr``: our renderer ("planes" scheme, "planes"
with exactly the requested planes ("exact"), and "rays") against the independent nanodrr
renderer, per device and image size. Milliseconds per DRR are medians of round-robin
timed renders after one warm-up, divided by the batch; agreement is the normalised
cross-correlation (NCC); quality is measured against "rays" at 1024 samples per ray."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np
import torch

from geometry.camera import Camera
from geometry.carm import carm_pose
from registration.engine import reference_drr
from registration.engine.drr import DrrRenderer

#: the benchmark's pose: 20 deg LAO, 10 deg cranial, source 600 mm from the isocentre
POSE = {"lao_deg": 20.0, "cranial_deg": 10.0, "source_to_isocenter_mm": 600.0}
SOURCE_TO_DETECTOR_MM = 1000.0
TABLE_HEADER = (
    f"{'device':<6} {'size':>5} {'batch':>5} {'ours ms':>9} {'(spr)':>6} "
    f"{'rays ms':>9} {'nanodrr ms':>11} {'ratio':>7} {'NCC':>9} "
    f"{'nano@spr ms':>12} {'ratio':>7} {'exact ms':>9} {'ratio':>7}"
)


@dataclass(frozen=True)
class DrrBenchSettings:
    """Image ``sizes`` (px), ``samples`` per ray asked for, timed ``repeat``s, poses per
    call (``batch``; None: 1 on CPU, 16 on CUDA), quality up to ``quality_max`` px, and
    whether nanodrr is timed (``reference``)."""

    sizes: Sequence[int]
    samples: int
    repeat: int
    batch: int | None
    quality_max: int
    reference: bool


def ncc(a: np.ndarray, b: np.ndarray) -> float:
    """Normalised cross-correlation of two images (NaN when one is constant)."""
    a = a.astype(np.float64).ravel() - a.mean()
    b = b.astype(np.float64).ravel() - b.mean()
    den = np.sqrt((a @ a) * (b @ b))
    return float(a @ b / den) if den > 0 else float("nan")


def rel_err(a: np.ndarray, ref: np.ndarray) -> float:
    """Mean absolute error relative to the reference's mean (in %)."""
    return float(100.0 * np.abs(a - ref).mean() / max(float(np.abs(ref).mean()), 1e-12))


def time_round_robin(renders: dict, repeat: int, batch: int, sync) -> tuple[dict, dict]:
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


def synthetic_ct():
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


@dataclass
class _Renderers:
    """Our three renderers and nanodrr (None when not timed) on one device."""

    ours: DrrRenderer
    rays: DrrRenderer
    exact: DrrRenderer
    ref: object | None

    @classmethod
    def on(cls, volume, device: str, reference: bool) -> _Renderers:
        ours = DrrRenderer(volume, device=device)
        ref = (reference_drr.NanoDrrReference(ours.mu_volume, volume.affine, device=device)
               if reference else None)  # fmt: skip
        return cls(ours, DrrRenderer(volume, device=device, method="rays"),
                   DrrRenderer(volume, device=device, plane_sampling="exact"), ref)


def _render_calls(r: _Renderers, Ts, K, size: int, samples: int) -> dict:
    """The render functions timed at one size, by name (nanodrr twice: with ``samples``
    and with as many samples per ray as our planes scheme takes)."""
    renders = {
        "ours": partial(r.ours.render, Ts, K, size, size, samples_per_ray=samples),
        "ours_rays": partial(r.rays.render, Ts, K, size, size, samples_per_ray=samples),
        "ours_exact": partial(r.exact.render, Ts, K, size, size, samples_per_ray=samples),
    }
    if r.ref is not None:
        sdd = SOURCE_TO_DETECTOR_MM
        renders["nanodrr"] = partial(r.ref.render, Ts, K, size, size,
                                     source_to_detector_mm=sdd, samples_per_ray=samples)
        with torch.no_grad():
            r.ours.render(Ts[:1], K, size, size, samples_per_ray=samples)
        renders["nanodrr_same_samples"] = partial(
            r.ref.render, Ts, K, size, size, source_to_detector_mm=sdd,
            samples_per_ray=max(2, r.ours.last_samples_per_ray))  # fmt: skip
    return renders


def _quality(r: _Renderers, images: dict, Ts, K, size: int) -> dict:
    """NCC and mean relative error (%) of every image against "rays" at 1024 samples."""
    with torch.no_grad():
        hq = r.rays.render(Ts[:1], K, size, size, samples_per_ray=1024)[0]
    hq = hq.float().cpu().numpy()
    names = {"ours": "ours", "ours_rays": "ours_rays", "ours_exact": "ours_exact"}
    if "nanodrr" in images:
        names.update(nanodrr="nanodrr", nanodrr_same_samples="nanodrr_same_samples")
    return {key: {"ncc": ncc(images[name], hq), "mean_rel_err_pct": rel_err(images[name], hq)}
            for key, name in names.items()}  # fmt: skip


def _nanodrr_columns(ms_of: dict, images: dict) -> dict:
    ms, ms_ref = ms_of["ours"], ms_of["nanodrr"]
    img_ref = images["nanodrr"]
    return {
        "nanodrr_ms": ms_ref,
        "ratio_nanodrr_over_ours": ms_ref / ms,
        "ratio_nanodrr_over_ours_rays": ms_ref / ms_of["ours_rays"],
        "ratio_nanodrr_over_ours_exact": ms_ref / ms_of["ours_exact"],
        "ncc_ours_exact_vs_nanodrr": ncc(images["ours_exact"], img_ref),
        "ncc_ours_vs_nanodrr": ncc(images["ours"], img_ref),
        "ncc_ours_rays_vs_nanodrr": ncc(images["ours_rays"], img_ref),
        "nanodrr_same_samples_ms": ms_of["nanodrr_same_samples"],
        "ratio_nanodrr_same_samples_over_ours": ms_of["nanodrr_same_samples"] / ms,
    }


def measure_size(r: _Renderers, device: str, T: np.ndarray, extent: float, size: int,
                 st: DrrBenchSettings) -> dict:  # fmt: skip
    """One table row: every renderer at ``size``^2 px on ``device`` (ms, samples, NCC)."""
    batch = st.batch or (16 if device == "cuda" else 1)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    Ts = torch.as_tensor(np.repeat(T[None], batch, 0), dtype=torch.float32, device=device)
    # detector covering the volume at the isocentre (magnification 1000/600)
    spacing = 1.1 * extent * (1000.0 / 600.0) / size
    cam = Camera.from_geometry(size, size, SOURCE_TO_DETECTOR_MM, spacing, spacing)
    K = torch.as_tensor(np.array(cam.K), dtype=torch.float32, device=device)
    ms_of, images = time_round_robin(_render_calls(r, Ts, K, size, st.samples), st.repeat,
                                     batch, sync)  # fmt: skip
    row = {
        "device": device,
        "size": size,
        "batch": batch,
        "samples_per_ray_requested": st.samples,
        "ours_ms": ms_of["ours"],
        "ours_samples_per_ray": r.ours.last_samples_per_ray,
        "ours_rays_ms": ms_of["ours_rays"],
        "ncc_ours_vs_ours_rays": ncc(images["ours"], images["ours_rays"]),
        "ours_exact_ms": ms_of["ours_exact"],
        "ours_exact_samples_per_ray": r.exact.last_samples_per_ray,
    }
    if "nanodrr" in images:
        row.update(_nanodrr_columns(ms_of, images))
    if size <= st.quality_max:
        row["quality_vs_rays1024"] = _quality(r, images, Ts, K, size)
    return row


def run_drr_bench(volume, devices: Sequence[str], st: DrrBenchSettings,
                  log: Callable[[str], object]) -> list[dict]:  # fmt: skip
    """Every device and size in turn (the table header, then a line per row, to ``log``)."""
    n = np.array(volume.shape[::-1], float)
    center = volume.voxel_to_world(((n - 1) / 2)[None])[0]
    extent = float(np.max(np.ptp(volume.corners_world(), axis=0)))
    T = carm_pose(POSE["lao_deg"], POSE["cranial_deg"], POSE["source_to_isocenter_mm"], center)
    rows: list[dict] = []
    for device in devices:
        r = _Renderers.on(volume, device, st.reference)
        for size in st.sizes:
            rows.append(measure_size(r, device, T, extent, size, st))
            if len(rows) == 1:
                log(TABLE_HEADER)
            log(row_line(rows[-1]))
    return rows


def row_line(row: dict) -> str:
    """A row of the printed table (``n/a`` where nanodrr was not timed)."""
    nano = row.get("nanodrr_ms")
    nano_txt = f"{nano:.1f}" if nano is not None else "n/a"
    ratio_txt = f"{row['ratio_nanodrr_over_ours']:.2f}x" if nano is not None else "n/a"
    ncc_txt = f"{row['ncc_ours_vs_nanodrr']:.6f}" if nano is not None else "n/a"
    same = row.get("nanodrr_same_samples_ms")
    same_txt = f"{same:.1f}" if same is not None else "n/a"
    same_ratio = f"{same / row['ours_ms']:.2f}x" if same is not None else "n/a"
    exact_ratio = f"{nano / row['ours_exact_ms']:.2f}x" if nano is not None else "n/a"
    return (
        f"{row['device']:<6} {row['size']:>5} {row['batch']:>5} {row['ours_ms']:>9.1f} "
        f"{row['ours_samples_per_ray']:>6} {row['ours_rays_ms']:>9.1f} "
        f"{nano_txt:>11} {ratio_txt:>7} {ncc_txt:>9} {same_txt:>12} {same_ratio:>7} "
        f"{row['ours_exact_ms']:>9.1f} {exact_ratio:>7}"
    )
