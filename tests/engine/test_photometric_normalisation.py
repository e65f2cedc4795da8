"""One photometric normalisation: linear-count, log-display, MONOCHROME1 and gamma-curved
copies of one simulated shot map to the same line-integral image (NCC >= 0.95), the form
and polarity read from the image's own quantum noise."""

from __future__ import annotations

import numpy as np
import pytest

from geometry.camera import Camera
from geometry.carm import carm_pose
from registration.engine.drr import DrrRenderer
from registration.engine.intensity import line_integral_and_mask
from registration.engine.xray_input import line_integral_with_info
from registration.engine.xray_sim import XraySimParams, simulate_xray
from simulation.phantom_ct import synthetic_bone_ct

FULL = 2**16 - 1


def _ncc(a: np.ndarray, b: np.ndarray, m: np.ndarray) -> float:
    a, b = a[m] - a[m].mean(), b[m] - b[m].mean()
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()))


@pytest.fixture(scope="module")
def shot():
    vol = synthetic_bone_ct(48, 4.0)
    cam = Camera.from_geometry(160, 160, 1000.0, 1.8, 1.8)
    drr = DrrRenderer(vol).render_numpy(cam, carm_pose(25.0, 10.0, 650.0, [0.0, 0.0, 0.0]),
                                        samples_per_ray=96)
    sim = simulate_xray(drr, XraySimParams(dose=4e3, gain=0.8, ii_radius_fraction=None),
                        rng=np.random.default_rng(3))
    v = sim.pixels.astype(np.float64) / FULL
    field = sim.pixels > 0
    log_disp = np.clip(1.0 + np.log(np.maximum(v, 1.0 / FULL)) / 6.0, 0.0, 1.0)
    forms = {
        "linear": (sim.pixels, "MONOCHROME2"),
        "log": (np.where(field, np.round(log_disp * FULL), 0).astype(np.uint16), "MONOCHROME2"),
        "monochrome1": ((FULL - sim.pixels.astype(np.int64)).astype(np.uint16), "MONOCHROME1"),
        "gamma": (np.where(field, np.round(v**0.45 * FULL), 0).astype(np.uint16), "MONOCHROME2"),
    }
    return drr, forms


def test_display_forms_map_to_one_image(shot):
    drr, forms = shot
    out = {k: line_integral_with_info(px, phot, bits_stored=16) for k, (px, phot) in forms.items()}
    ref, ref_mask, _ = out["linear"]
    for name, (li, mask, info) in out.items():
        m = mask & ref_mask
        assert _ncc(li, ref, m) >= 0.95, (name, info)
        assert _ncc(li, drr, m) >= 0.95, (name, info)  # and bone bright, like a DRR
    assert out["log"][2]["form"] == "log"
    assert out["linear"][2]["form"] == "counts" and out["linear"][2]["detected"]
    # MONOCHROME1 of bone-dark counts: the header convention would call it bone bright
    assert out["monochrome1"][2]["polarity"] == "bone_dark"


def test_without_detection_the_log_display_is_distorted(shot):
    """The test above can fail: the header convention alone (as before) bends the log
    display and inverts the MONOCHROME1 copy."""
    drr, forms = shot
    legacy = {k: line_integral_and_mask(px, phot, bits_stored=16) for k, (px, phot) in forms.items()}
    ref, ref_mask = legacy["linear"]
    li, mask = legacy["monochrome1"]
    assert _ncc(li, ref, mask & ref_mask) < 0.0
    li, mask = legacy["log"]
    detected, dmask, _ = line_integral_with_info(*forms["log"], bits_stored=16)
    assert _ncc(detected, ref, dmask & ref_mask) > _ncc(li, ref, mask & ref_mask)


def test_noise_free_image_keeps_the_header_convention():
    yy, xx = np.mgrid[0:96, 0:96]
    line = 1.0 + 0.8 * np.exp(-((xx - 40.0) ** 2 + (yy - 50.0) ** 2) / 300.0)
    px = np.round(0.9 * FULL * np.exp(-line)).astype(np.uint16)
    li, mask, info = line_integral_with_info(px, "MONOCHROME2", bits_stored=16)
    assert info["polarity"] == "bone_dark" and not info["detected"]
    assert _ncc(li, line, mask) > 0.999
