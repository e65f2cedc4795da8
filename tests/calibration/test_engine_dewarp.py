"""Dewarping images with cached remap maps."""

import numpy as np
import pytest

from calibration.engine import dewarp as dw
from calibration.engine.calibrate import calibrate
from calibration.engine.detect import detect_beads
from calibration.engine.phantom import builtin_phantom
from simulation.phantom_frames import IIDistortion, SimGeometry, simulate_phantom_image

SP = 0.5


@pytest.fixture(scope="module")
def setup():
    p = builtin_phantom("clipon_two_layer")
    geo = SimGeometry(512, 512, (SP, SP), (0.0, 0.0, -1000.0))
    sim = simulate_phantom_image(
        p, geo, IIDistortion.random(np.random.default_rng(9)), rng=9, flip=True
    )
    return sim, calibrate(sim.image, p, (SP, SP))


def test_dewarped_image_puts_beads_at_ideal_positions(setup):
    sim, res = setup
    out = dw.dewarp_image(sim.image, res.profile)
    assert out.shape == sim.image.shape and out.dtype == sim.image.dtype
    det = detect_beads(out, (0.85 / SP, 2.4 / SP), beads_bright=False)
    truth = np.array([sim.true_dewarped_px[i] for i in sim.true_px if i.startswith("N")])
    d = np.linalg.norm(det.xy[None] - truth[:, None], axis=2)
    nearest = d.min(axis=1)
    inner = np.linalg.norm(truth - 255.5, axis=1) < 180
    assert np.median(nearest[inner]) < 0.1
    assert np.percentile(nearest[inner], 95) < 0.25


def test_maps_are_cached_by_profile_and_size(setup):
    _, res = setup
    dw.clear_cache()
    m1 = dw.dewarp_maps(res.profile, 512, 512)
    m2 = dw.dewarp_maps(res.profile, 512, 512)
    assert m1[0] is m2[0]
    other = dict(res.profile, flip_horizontal=not res.profile["flip_horizontal"])
    assert dw.dewarp_maps(other, 512, 512)[0] is not m1[0]


def test_size_mismatch_and_bad_profile(setup):
    _, res = setup
    with pytest.raises(dw.ProfileError, match="made for 512x512"):
        dw.dewarp_image(np.zeros((100, 120), np.uint16), res.profile)
    bad = dict(res.profile)
    bad["forward"] = dict(bad["forward"], coeffs_x=[1.0, 2.0])
    with pytest.raises(dw.ProfileError, match="polynomial is invalid"):
        dw.check_profile(bad)
    with pytest.raises(dw.ProfileError, match="missing field 'inverse'"):
        dw.check_profile({k: v for k, v in res.profile.items() if k != "inverse"})


def test_coarse_maps_match_dense_maps(setup):
    _, res = setup
    dense = dw.exact_source_coordinates(res.profile, 512, 512, step=1)
    coarse = dw.exact_source_coordinates(res.profile, 512, 512, step=4)
    vv, uu = np.mgrid[0:512, 0:512]
    field = np.hypot(uu - 255.5, vv - 255.5) < 220
    err = np.hypot(dense[0] - coarse[0], dense[1] - coarse[1])[field]
    assert np.max(err) < 0.01
    # forward(map(p)) == p: the maps invert the forward polynomial
    from geometry.distortion import Poly2D

    fwd = Poly2D.from_dict(res.profile["forward"])
    sel = np.column_stack([uu[field][::97], vv[field][::97]]).astype(float)
    src = np.column_stack([dense[0][field][::97], dense[1][field][::97]]).astype(float)
    src[:, 0] = 511 - src[:, 0]  # the profile is flipped: undo to get flip-corrected pixels
    assert np.max(np.linalg.norm(fwd.apply(src) - sel, axis=1)) < 0.01
