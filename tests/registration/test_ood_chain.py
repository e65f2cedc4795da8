"""The OOD X-ray chain: exposure, noise and the stored forms are what they claim."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from registration.bench import xray_chain
from registration.bench.xray_chain import FULL_SCALE, encode, expected_counts, log_display


def _params(**kw) -> xray_chain.ChainParams:
    p = xray_chain.sample_params(np.random.default_rng(3), "linear")
    return dataclasses.replace(p, **{"heel": 0.0, "blades": (0.0, 0.0, 0.0, 0.0), **kw})


def _ramp_counts() -> np.ndarray:
    L = np.tile(np.linspace(0.2, 5.0, 96), (64, 1))  # line integrals rising along columns
    return xray_chain.detected_counts(L, _params(aec_set_point=2000.0), np.random.default_rng(1))


def test_aec_sets_the_central_primary_and_poisson_noise_scales_with_counts():
    L = np.full((90, 90), 2.0)
    p = _params(aec_set_point=1500.0, scatter_fraction=0.2, detector_sigma_px=0.01, read_noise=0.0)
    lam = expected_counts(L, p)
    assert np.median(lam[30:60, 30:60]) == pytest.approx(1500 / 0.8, rel=0.02)  # + scatter
    c = xray_chain.detected_counts(L, p, np.random.default_rng(0))
    assert c.var() / c.mean() == pytest.approx(1.0, abs=0.1)


def test_blades_leave_only_a_little_scatter_behind_them():
    p = _params(blades=(0.2, 0.0, 0.0, 0.1))
    lam = expected_counts(np.full((50, 60), 1.0), p)
    m = xray_chain.field_mask(lam.shape, p.blades)
    assert not m[:, :12].any() and not m[-5:].any() and m[10:40, 20:].all()
    assert lam[~m].max() < 0.2 * lam[m].min()


def test_linear_counts_are_proportional_and_16_bit():
    c = _ramp_counts()
    px, phot = encode(c, _params(display="linear"), "png")
    assert px.dtype == np.uint16 and phot == "MONOCHROME2"
    ratio = px[c > 50] / c[c > 50]
    assert np.ptp(ratio) / ratio.mean() < 0.02  # one gain, rounding aside
    assert px.max() > 1000


def test_log_display_is_monotone_in_counts_and_uses_the_range():
    c = _ramp_counts()
    px, phot = encode(c, _params(display="log"), "png")
    assert phot == "MONOCHROME2" and px.dtype == np.uint16
    order = np.argsort(c.ravel())
    assert np.all(np.diff(px.ravel()[order].astype(np.int64)) >= 0)
    assert px.max() - px.min() > 0.8 * FULL_SCALE
    lg = np.log1p(c)
    inner = (px > 0.06 * FULL_SCALE) & (px < 0.94 * FULL_SCALE)
    assert np.corrcoef(px[inner], lg[inner])[0, 1] > 0.999  # linear in log counts


def test_mono1_is_the_inverted_display():
    c = _ramp_counts()
    p = _params(display="mono1")
    dcm, phot_d = encode(c, p, "dicom")
    png, phot_p = encode(c, p, "png")
    ref = np.rint(log_display(c)).astype(np.int64)
    assert phot_d == "MONOCHROME1" and phot_p == "MONOCHROME2"
    # a MONOCHROME1 viewer shows max - stored: the log display turned over (bone white)
    np.testing.assert_array_equal(dcm.astype(np.int64), ref)
    np.testing.assert_array_equal(png.astype(np.int64), FULL_SCALE - ref)


def test_gamma_curve():
    c = _ramp_counts()
    p = _params(display="gamma", gamma=0.5)
    px, phot = encode(c, p, "png")
    assert phot == "MONOCHROME2"
    np.testing.assert_allclose(px, (c / c.max()) ** 0.5 * FULL_SCALE, atol=0.51)


def test_unknown_display_is_refused():
    with pytest.raises(ValueError, match="unknown display"):
        encode(np.ones((4, 4)), _params(display="sepia"), "png")
