"""A collimator blade that covers only a pixel or two at the border is outside the field."""

from __future__ import annotations

import numpy as np
import pytest

from registration.engine.intensity import field_mask, line_integral_and_mask
from registration.engine.xray_sim import XraySimParams, simulate_xray


def _body(h: int = 80, w: int = 96) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    return 3.0 + 1.5 * np.exp(-((xx - 50.0) ** 2 + (yy - 36.0) ** 2) / 300.0)


@pytest.mark.parametrize("width_px", [1, 2])
@pytest.mark.parametrize("side", ["left", "top", "right", "bottom"])
def test_thin_blade_is_masked(side: str, width_px: int):
    line = _body()
    H, W = line.shape
    frac = width_px / (W if side in ("left", "right") else H)
    blades = {"left": (frac, 0, 0, 0), "top": (0, frac, 0, 0), "right": (0, 0, frac, 0),
              "bottom": (0, 0, 0, frac)}[side]
    sim = simulate_xray(line, XraySimParams(dose=1e6, collimator=blades, ii_radius_fraction=None),
                        rng=np.random.default_rng(3))
    img, mask = line_integral_and_mask(sim.pixels, sim.photometric, bits_stored=sim.bits_stored)
    unexposed = sim.pixels == 0
    assert unexposed.sum() == width_px * (H if side in ("left", "right") else W)
    assert not (mask & unexposed).any()
    # the exposed field stays in (apart from the 3x3 margin the mask keeps off blades)
    assert mask.sum() >= (~unexposed).sum() - 3 * max(H, W)
    # and no unexposed pixel reads as anatomy thicker than the thickest body part
    assert img[mask].max() < line.max() + 0.3


def test_flat_border_lines_leave_a_textured_image_alone():
    rng = np.random.default_rng(0)
    img = rng.uniform(100, 200, (40, 50))
    assert field_mask(img).all()
