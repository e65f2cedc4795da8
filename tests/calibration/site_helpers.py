"""Helpers for the calibration site tests: a simulated phantom image as PNG bytes."""

from __future__ import annotations

import cv2
import numpy as np

from calibration.engine.io import to_uint16
from calibration.engine.phantom import builtin_phantom
from simulation.phantom_frames import SimGeometry, simulate_phantom_image

SPACING_MM = (0.5, 0.5)


def phantom_png(seed: int = 0, *, name: str = "clipon_two_layer", blank: bool = False, hide_fraction: float = 0.0) -> bytes:
    """A simulated image-intensifier phantom image (512 x 512, 0.5 mm pixels) as 16-bit PNG."""
    if blank:
        image = np.full((512, 512), 30000, np.uint16)
    else:
        sim = simulate_phantom_image(
            builtin_phantom(name), SimGeometry(spacing=SPACING_MM), rng=seed, hide_fraction=hide_fraction
        )
        image = to_uint16(sim.image)
    ok, buf = cv2.imencode(".png", image)
    assert ok
    return buf.tobytes()
