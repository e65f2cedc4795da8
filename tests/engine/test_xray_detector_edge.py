"""Close-up windows past the detector edge: the missing pixels add no scatter or glare."""

from __future__ import annotations

import numpy as np
import pytest

from registration.engine.xray_sim import XraySimParams, simulate_xray

THICK = 5.0  # line integral of a uniform thick body (transmits exp(-5) = 0.7 %)
SCATTER = 0.3
PARAMS = XraySimParams(dose=1e7, heel_strength=0.0, scatter_fraction=SCATTER,
                       scatter_sigma_px=10.0, ii_radius_fraction=None, gain=0.9)


def _half_detector(h: int = 64, w: int = 96) -> tuple[np.ndarray, np.ndarray]:
    """A uniform thick body over a window whose right half lies beyond the detector."""
    line = np.full((h, w), THICK)
    detector = np.zeros((h, w), bool)
    detector[:, : w // 2] = True
    return line, detector


def _recorded_line(sim, field: np.ndarray) -> np.ndarray:
    """-log(counts / dose) where a pixel was recorded (gain 0.9, gamma 1)."""
    signal = sim.pixels.astype(np.float64) / (2**16 - 1) / PARAMS.gain
    return -np.log(np.clip(signal[field], 1e-9, None))


def test_pixels_beyond_the_detector_add_no_scatter():
    line, detector = _half_detector()
    sim = simulate_xray(line, PARAMS, rng=np.random.default_rng(0), detector=detector)
    assert not sim.pixels[~detector].any() and not sim.mask[~detector].any()
    # uniform body, scatter at most SCATTER x the primary: the line integral drops by at
    # most log(1 + SCATTER) = 0.26 (plus noise), also beside the missing half
    edge = np.zeros_like(detector)
    edge[:, detector.shape[1] // 2 - 4 : detector.shape[1] // 2] = True
    recorded = _recorded_line(sim, edge)
    assert recorded.mean() > THICK - np.log(1 + SCATTER) - 0.02


def test_without_the_detector_mask_the_open_half_glares():
    """The failure the mask prevents: open beam beside a thick body swamps its primary."""
    line, detector = _half_detector()
    line = np.where(detector, line, 0.0)
    sim = simulate_xray(line, PARAMS, rng=np.random.default_rng(0))
    edge = np.zeros_like(detector)
    edge[:, detector.shape[1] // 2 - 4 : detector.shape[1] // 2] = True
    assert _recorded_line(sim, edge).mean() < THICK - 1.5


def test_detector_mask_of_another_size_is_refused():
    line, _ = _half_detector()
    with pytest.raises(ValueError, match="detector mask is 3x2 pixels"):
        simulate_xray(line, PARAMS, detector=np.ones((2, 3), bool))
