"""Refused phantom images: blank, wrong phantom, too few beads, an empty quadrant."""

import numpy as np
import pytest

from calibration.engine.calibrate import CalibrationError, calibrate
from calibration.engine.phantom import builtin_phantom
from simulation.phantom_frames import SimGeometry, simulate_phantom_image

SP = 0.5
GEO = SimGeometry(512, 512, (SP, SP), (2.0, 3.0, -1000.0))


@pytest.fixture(scope="module")
def clipon():
    return builtin_phantom("clipon_two_layer")


@pytest.fixture(scope="module")
def reference(clipon):
    return simulate_phantom_image(clipon, GEO, rng=3)


def test_blank_image(clipon):
    with pytest.raises(CalibrationError, match=r"^image is blank \(no contrast\)$"):
        calibrate(np.full((512, 512), 800.0), clipon, (SP, SP))


def test_noise_only_image(clipon):
    img = np.random.default_rng(0).normal(1000, 20, (512, 512))
    with pytest.raises(CalibrationError, match="bead-like blobs detected: not an image of phantom"):
        calibrate(img, clipon, (SP, SP))


def test_wrong_phantom_both_ways(clipon):
    plate = builtin_phantom("dot_grid_plate")
    plate_img = simulate_phantom_image(plate, GEO, rng=4).image
    with pytest.raises(CalibrationError, match="wrong phantom or wrong pixel spacing"):
        calibrate(plate_img, clipon, (SP, SP))
    clip_img = simulate_phantom_image(clipon, GEO, rng=4).image
    with pytest.raises(CalibrationError, match="wrong phantom"):
        calibrate(clip_img, plate, (SP, SP))


def test_wrong_pixel_spacing(clipon, reference):
    with pytest.raises(CalibrationError, match="wrong pixel spacing"):
        calibrate(reference.image, clipon, (0.4, 0.4))


def test_too_few_beads(clipon, reference):
    keep = set(list(reference.true_px)[::8])
    sim = simulate_phantom_image(clipon, GEO, rng=3, hide=[i for i in clipon.ids if i not in keep])
    with pytest.raises(CalibrationError, match=r"^only \d+ of \d+ beads found"):
        calibrate(sim.image, clipon, (SP, SP))


def test_empty_quadrant(clipon, reference):
    c = 255.5
    hide = [i for i, (u, v) in reference.true_px.items() if u < c + 8 and v > c - 8]
    sim = simulate_phantom_image(clipon, GEO, rng=3, hide=hide)
    with pytest.raises(CalibrationError, match="^no beads detected in the lower-left quadrant$"):
        calibrate(sim.image, clipon, (SP, SP))


def test_far_layer_missing(clipon, reference):
    far = [i for i in clipon.ids if i.startswith("F")]
    sim = simulate_phantom_image(clipon, GEO, rng=3, hide=far)
    with pytest.raises(CalibrationError, match=r"far-layer \(plane 1\) beads found"):
        calibrate(sim.image, clipon, (SP, SP))


def test_single_plane_plate_gives_distortion_only():
    plate = builtin_phantom("dot_grid_plate")
    sim = simulate_phantom_image(plate, GEO, rng=5)
    res = calibrate(sim.image, plate, (SP, SP))
    assert res.profile["source_mm"] is None and res.profile["K"] is None
    assert res.profile["residuals_mm"]["rms"] < 0.05
