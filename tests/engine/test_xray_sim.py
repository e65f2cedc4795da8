"""Simulated X-rays and their conversion back to line-integral form."""

from __future__ import annotations

import numpy as np
import pytest

from geometry.distortion import Poly2D
from registration.engine.intensity import line_integral_and_mask, to_line_integral
from registration.engine.xray_sim import XraySimParams, distort_image, simulate_xray

CLEAN = dict(heel_strength=0.0, scatter_fraction=0.0, ii_radius_fraction=None, gain=0.9, gamma=1.0)


def _phantom_line(h=96, w=112, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    line = np.zeros((h, w))
    for _ in range(6):
        cx, cy, r, a = (
            rng.uniform(20, w - 20),
            rng.uniform(20, h - 20),
            rng.uniform(6, 18),
            rng.uniform(0.5, 1.5),
        )
        line += a * np.clip(1 - ((xx - cx) ** 2 + (yy - cy) ** 2) / r**2, 0, None)
    line[:8, :8] = 0.0  # some unattenuated beam
    return line


def test_round_trip_to_line_integral():
    line = _phantom_line()
    sim = simulate_xray(line, XraySimParams(dose=1e7, **CLEAN), rng=np.random.default_rng(1))
    assert sim.pixels.dtype == np.uint16 and sim.photometric == "MONOCHROME2"
    back = to_line_integral(sim.pixels, sim.photometric)
    assert np.abs(back - line).max() < 0.02
    # MONOCHROME1 storage of the same exposure gives the same line integrals
    inverted = (2**16 - 1) - sim.pixels.astype(np.int64)
    back1 = to_line_integral(inverted, "MONOCHROME1", bits_stored=16, polarity="bone_dark")
    np.testing.assert_allclose(back1, back, atol=1e-5)
    # 8-bit storage works too (coarser)
    sim8 = simulate_xray(
        line, XraySimParams(dose=1e7, bits=8, **CLEAN), rng=np.random.default_rng(1)
    )
    assert sim8.pixels.dtype == np.uint8
    assert (
        np.corrcoef(to_line_integral(sim8.pixels, "MONOCHROME2").ravel(), line.ravel())[0, 1] > 0.99
    )


def test_poisson_noise_matches_dose():
    line = np.full((128, 128), 1.0)
    line[:4, :4] = 0.0
    dose = 4000.0
    sim = simulate_xray(line, XraySimParams(dose=dose, **CLEAN), rng=np.random.default_rng(2))
    back = to_line_integral(sim.pixels, "MONOCHROME2")
    expected = 1.0 / np.sqrt(dose * np.exp(-1.0))  # std of -log(counts / mean)
    measured = back[8:, 8:].std()
    assert measured == pytest.approx(expected, rel=0.1)


def test_collimator_and_ii_field_are_masked():
    line = _phantom_line()
    p = XraySimParams(dose=1e5, collimator=(0.1, 0.05, 0.15, 0.0), ii_radius_fraction=0.47)
    sim = simulate_xray(line, p, rng=np.random.default_rng(3))
    assert not sim.mask[:, :5].any() and not sim.mask[:, -10:].any()
    assert (sim.pixels[~sim.mask] == 0).all()
    line_back, mask = line_integral_and_mask(sim.pixels, "MONOCHROME2")
    iou = (mask & sim.mask).sum() / (mask | sim.mask).sum()
    assert iou > 0.95
    assert (line_back[~mask] == 0).all() and np.isfinite(line_back).all()
    assert line_back.max() < 10


def test_heel_and_scatter():
    flat = np.zeros((64, 64))
    sim = simulate_xray(
        flat,
        XraySimParams(dose=1e6, heel_strength=0.2, scatter_fraction=0.0, ii_radius_fraction=None),
        rng=np.random.default_rng(4),
    )
    top, bottom = sim.pixels[:8].mean(), sim.pixels[-8:].mean()
    heel = 1 + 0.2 * (0.5 - np.arange(64) / 63)
    assert top / bottom == pytest.approx(heel[:8].mean() / heel[-8:].mean(), rel=0.005)
    line = np.zeros((64, 64))
    line[24:40, 24:40] = 2.0
    kw = dict(dose=1e7, heel_strength=0.0, ii_radius_fraction=None)
    no_scatter = to_line_integral(
        simulate_xray(line, XraySimParams(scatter_fraction=0.0, **kw)).pixels
    )
    scatter = to_line_integral(
        simulate_xray(line, XraySimParams(scatter_fraction=0.3, **kw)).pixels
    )
    # scatter lowers the apparent attenuation of the dense square
    assert scatter[32, 32] < no_scatter[32, 32] - 0.1


def test_distortion_moves_features_through_the_forward_map():
    W = H = 101
    poly = Poly2D.identity(3, ((W - 1) / 2.0, (H - 1) / 2.0), (W / 2.0, H / 2.0)).to_dict()
    poly["coeffs_x"][3] = 2.5  # xn^2 term (pixels)
    poly["coeffs_y"][7] = -3.0  # xn^2 * yn
    poly["coeffs_x"][0] += 1.5
    img = np.zeros((H, W), np.float32)
    xu, yu = 70, 30
    img[yu - 1 : yu + 2, xu - 1 : xu + 2] = 1.0
    dist = distort_image(img, poly)
    yy, xx = np.mgrid[0:H, 0:W]
    wsum = dist.sum()
    xd, yd = (dist * xx).sum() / wsum, (dist * yy).sum() / wsum
    fx, fy = Poly2D.from_dict(poly)(xd, yd)
    assert np.hypot(fx - xu, fy - yu) < 0.3
    assert np.hypot(xd - xu, yd - yu) > 1.0  # it did move
    # the full simulator applies it too
    sim = simulate_xray(
        -np.log(1 - 0.5 * img + 1e-9), XraySimParams(dose=1e8, distortion=poly, **CLEAN)
    )
    assert sim.pixels.shape == (H, W)


def test_bad_inputs():
    with pytest.raises(ValueError, match="photometric"):
        to_line_integral(np.zeros((4, 4)), "RGB")
    with pytest.raises(ValueError, match="2-D"):
        to_line_integral(np.zeros(5))
    with pytest.raises(ValueError, match="NaN"):
        simulate_xray(np.full((4, 4), np.nan))
    with pytest.raises(ValueError, match="coefficients"):
        Poly2D.from_dict(
            {"order": 3, "center": [0, 0], "scale": [1, 1], "coeffs_x": [1], "coeffs_y": [1]}
        )
