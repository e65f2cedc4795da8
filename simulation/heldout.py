"""Held-out simulated X-rays for benchmarks (no Django).

A shot is a pose from the training pose ranges but a random stream training never used,
optionally a close-up window, rendered and passed through the imaging engine's C-arm
simulator (:func:`registration.engine.xray_sim.simulate_xray`, not the training
augmentation) with another noise and contrast setting, then through the same stored
pixels -> line-integral path as ``register_xray``. ``bench_registration`` and
``bench_self_check`` draw the same shots for the same seed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from geometry.camera import Camera, project
from geometry.carm import carm_pose
from registration.engine.dataset import (
    PoseSampler,
    sample_window,
    window_camera,
    window_valid_mask,
)
from registration.engine.intensity import line_integral_and_mask
from registration.engine.xray_sim import XraySimParams, aec_dose, simulate_xray

# the random stream of the held-out poses: bench seed + this (training uses the seed alone)
HELDOUT_STREAM_OFFSET = 7919
# the benchmarks' C-arm: 512 x 512 px of 0.6 mm, source to detector 1000 mm
BENCH_CAMERA = {"width": 512, "height": 512, "sdd": 1000.0, "spacing": 0.6}


def bench_camera() -> Camera:
    """The benchmarks' pinhole camera (:data:`BENCH_CAMERA`, principal point centred)."""
    c = BENCH_CAMERA
    return Camera.from_geometry(c["width"], c["height"], c["sdd"], c["spacing"], c["spacing"])


class PartsNotOnOneGrid(ValueError):
    """The part volumes of a pelvis_bone_* folder do not share one voxel grid."""


def load_bench_ct(path: Path):
    """A CT for benchmarking: a NIfTI/DICOM path, or a pelvis_bone_* folder whose ilium and
    sacrum volumes (background 0) are summed and the background set to air. Raises
    ``dicomio.InputRefused`` for unreadable input and :class:`PartsNotOnOneGrid`."""
    from dicomio import load_ct
    from dicomio.volume import CTVolume

    path = Path(path)
    if path.is_dir():
        parts = sorted(p for p in path.glob("*.nii.gz") if "_mask" not in p.name)
        if parts and all(p.name.split("_")[-1] in ("LI.nii.gz", "RI.nii.gz", "SA.nii.gz")
                         for p in parts):
            vols = [load_ct(p) for p in parts]
            arr = np.zeros(vols[0].shape, np.float32)
            fg = np.zeros(vols[0].shape, bool)
            for v in vols:
                if v.shape != arr.shape or not np.allclose(v.affine, vols[0].affine, atol=1e-3):
                    raise PartsNotOnOneGrid(f"{path.name}: the part volumes are not on one grid")
                arr += v.array
                fg |= v.array != 0
            arr[~fg] = -1000.0
            return CTVolume(arr, vols[0].affine, {"source": str(path)})
    return load_ct(path)


@dataclass
class HeldOutShot:
    """One simulated X-ray: ``image`` (H, W) line integrals and ``valid`` (H, W) mask as
    ``register`` takes them, its ``camera``, the true ``T_cam_from_world`` (LPS mm ->
    camera mm), the sampled C-arm angles (``info``), ``kind`` ("full" or "closeup") and
    ``targets`` (N, 3) LPS mm bone points in view for the target registration error."""

    image: np.ndarray
    valid: np.ndarray
    camera: Camera
    T_true: np.ndarray
    info: dict
    kind: str
    targets: np.ndarray


def simulate_heldout_shot(
    renderer,
    camera: Camera,
    sampler: PoseSampler,
    rng: np.random.Generator,
    bone_lps: np.ndarray,
    *,
    index: int,
    seed: int,
    closeup_share: float = 0.3,
    fixed_dose: bool = False,
) -> HeldOutShot:
    """Shot number ``index`` of the held-out stream ``rng`` (draws from it in a fixed
    order). ``bone_lps`` (M, 3): bone points of the CT, from which the targets are the
    (at most 200) that project into the image. Exposure: automatic exposure control (a
    set point of 1e3-1e4 photons at the centre) or, with ``fixed_dose``, a tube output of
    4e3-6e4 photons per unattenuated pixel regardless of the patient."""
    T_true, info = sampler.sample(rng)
    close = rng.random() < closeup_share
    if close:
        u0, v0, side = sample_window(camera, rng, closeup_prob=1.0, min_fraction=0.4)
        side = float(int(side))
        size = int(side)
        icam = window_camera(camera, u0, v0, side, size)
        ivalid = window_valid_mask(camera, u0, v0, side, size)
    else:
        icam, ivalid = camera, np.ones((camera.height, camera.width), bool)
    drr = renderer.render_numpy(icam, T_true, samples_per_ray=160)
    lo_c = rng.uniform(0, 0.12, 4) * (rng.random() < 0.5)
    if fixed_dose:  # the tube output drawn regardless of the patient
        dose = float(np.exp(rng.uniform(np.log(4e3), np.log(6e4))))
    else:  # automatic exposure control: a set point for the central detector signal
        dose = aec_dose(drr, float(np.exp(rng.uniform(np.log(1e3), np.log(1e4)))),
                        field=ivalid)
    sim = simulate_xray(drr, XraySimParams(
        dose=dose,
        heel_strength=float(rng.uniform(0.05, 0.25)),
        scatter_fraction=float(rng.uniform(0.05, 0.3)),
        scatter_sigma_px=float(rng.uniform(10, 40)),
        collimator=tuple(float(x) for x in lo_c),
        ii_radius_fraction=None if close or rng.random() < 0.5 else float(rng.uniform(0.47, 0.5)),
        gain=float(rng.uniform(0.6, 0.95)),
    ), rng=np.random.default_rng([seed, 15485863, index]), detector=ivalid)
    # ^ the quantum noise has its own stream per image: Poisson draws consume a
    # dose-dependent amount of randomness and would change every later shot. A close-up
    # window's pixels beyond the detector edge get no photons (detector=): simulated as
    # open beam they glared 25x the primary over a thick abdomen
    img, val = line_integral_and_mask(sim.pixels, sim.photometric, bits_stored=sim.bits_stored)
    val = val & ivalid
    uv = project(bone_lps, icam.K, T_true)
    inside = (uv[:, 0] >= 0) & (uv[:, 0] < icam.width) & (uv[:, 1] >= 0) & (uv[:, 1] < icam.height)
    tgt = bone_lps[inside]
    if len(tgt) < 20:
        tgt = bone_lps
    tgt = tgt[np.random.default_rng(index).choice(len(tgt), min(200, len(tgt)), replace=False)]
    return HeldOutShot(img, val, icam, np.asarray(T_true, np.float64), info,
                       "closeup" if close else "full", tgt)


def header_start_pose(info: dict, rng: np.random.Generator, centre_lps_mm: np.ndarray) -> np.ndarray:
    """What the site knows of a shot from its header, as a ``T_cam_from_world`` start: the
    C-arm angles with 2 deg (1 SD) of patient/table misalignment drawn from ``rng``, and
    the source distance, aimed at ``centre_lps_mm`` (the bone centre)."""
    return carm_pose(info["lao_deg"] + float(rng.normal(0, 2)),
                     info["cranial_deg"] + float(rng.normal(0, 2)), info["sid_mm"],
                     centre_lps_mm)


def summarise(errors: list[float]) -> dict:
    """mTRE statistics; non-finite entries are registrations that failed their self-check."""
    e = np.asarray(errors, dtype=np.float64)
    n = len(e)
    if n == 0:
        return {"n": 0}
    fin = e[np.isfinite(e)]
    big = 1e9  # stands in for a failed registration in order statistics
    srt = np.sort(np.where(np.isfinite(e), e, big))
    half = srt[: max(1, n // 2)]
    half = half[half < big]

    def stat(v: float) -> float | None:
        return float(v) if v < big / 2 else None

    return {
        "n": n,
        "n_self_check_failed": int(n - len(fin)),
        "median_mm": stat(np.median(srt)),
        "mean_mm_of_registered": float(np.mean(fin)) if len(fin) else None,
        # "higher": never interpolate between a real error and a failure's stand-in
        "p95_mm": stat(np.percentile(srt, 95, method="higher")),
        "share_under_mm": {str(t): float(np.mean(srt < t)) for t in (1, 2, 5, 10)},
        "best_half_mean_mm": float(np.mean(half)) if len(half) else None,
        "best_half_sd_mm": float(np.std(half)) if len(half) else None,
        "failure_rate_over_10mm": float(np.mean(~(srt <= 10.0))),
    }
