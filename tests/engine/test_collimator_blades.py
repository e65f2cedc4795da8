"""Collimator blades that still see scatter (noisy, not flat) are masked by the one X-ray
normalisation; an image without blades keeps its whole field."""

from __future__ import annotations

import numpy as np
import pytest

from geometry.camera import Camera
from geometry.carm import carm_pose
from registration.engine.drr import DrrRenderer
from registration.engine.xray_input import line_integral_with_info
from simulation.phantom_ct import synthetic_bone_ct


@pytest.fixture(scope="module")
def line():
    vol = synthetic_bone_ct(48, 4.0)
    cam = Camera.from_geometry(160, 160, 1000.0, 1.8, 1.8)
    return DrrRenderer(vol).render_numpy(cam, carm_pose(15.0, 5.0, 650.0, np.zeros(3)),
                                         samples_per_ray=96)


def _stored(line: np.ndarray, field: np.ndarray, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    primary = 5e3 * np.exp(-line) * field
    scatter = 0.3 * primary[field].mean()  # broad scatter, also under the blades (dimmer)
    lam = primary + np.where(field, scatter, 0.15 * scatter)
    counts = rng.poisson(lam).astype(np.float64) + rng.normal(0, 2.0, lam.shape)
    return np.clip(np.rint(counts * 8.0), 0, 65535).astype(np.uint16)


def test_scatter_lit_blades_are_masked(line):
    field = np.ones(line.shape, bool)
    field[:, :14] = False  # left blade
    field[-22:, :] = False  # bottom blade
    li, valid, info = line_integral_with_info(_stored(line, field, 1), "MONOCHROME2",
                                              bits_stored=16)
    assert not (valid & ~field).any()
    assert (field & ~valid).sum() < 0.03 * field.sum()
    assert info["blade_pixels"] > 0


def test_open_field_keeps_its_pixels(line):
    field = np.ones(line.shape, bool)
    _, valid, info = line_integral_with_info(_stored(line, field, 2), "MONOCHROME2",
                                             bits_stored=16)
    assert valid.mean() > 0.97 and info["blade_pixels"] < 0.03 * valid.size
