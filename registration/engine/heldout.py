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

import numpy as np
import torch

from registration.engine.camera import Camera, project
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
    with torch.no_grad():
        drr = renderer.render(torch.as_tensor(T_true[None], dtype=torch.float32),
                              torch.as_tensor(icam.K, dtype=torch.float32), icam.height,
                              icam.width, samples_per_ray=160)[0].numpy()
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
