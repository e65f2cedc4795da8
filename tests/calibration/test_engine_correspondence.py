"""Correspondence: bead naming under hidden beads, spurious blobs, rotation and mirror."""

import numpy as np
import pytest

from calibration.engine.calibrate import calibrate
from calibration.engine.phantom import builtin_phantom
from simulation.phantom_frames import IIDistortion, SimGeometry, simulate_phantom_image

SP = 0.5


@pytest.fixture(scope="module")
def phantom():
    return builtin_phantom("clipon_two_layer")


def _run(phantom, seed, **kw):
    geo = SimGeometry(512, 512, (SP, SP), (3.0, 5.0, -990.0))
    sim = simulate_phantom_image(
        phantom, geo, IIDistortion.random(np.random.default_rng(seed)), rng=seed, **kw
    )
    return sim, calibrate(sim.image, phantom, (SP, SP))


def _check_names(sim, res, min_fraction):
    used = [b for b in res.profile["beads"] if b["used"]]
    wrong = [
        b["id"]
        for b in used
        if b["id"] not in sim.true_px
        or np.linalg.norm(np.array(b["detected_px"]) - sim.true_px[b["id"]]) > 1.0
    ]
    assert wrong == []
    visible_near = [i for i in sim.true_px if i.startswith("N")]
    named_near = [b for b in used if b["plane"] == 0]
    assert len(named_near) >= min_fraction * len(visible_near)
    return used


def test_thirty_percent_hidden_and_spurious_blobs(phantom):
    sim, res = _run(phantom, 11, hide_fraction=0.35, n_spurious=40)
    _check_names(sim, res, 0.9)
    assert res.profile["beads_far_used"] >= 15
    # the spurious blobs are not named as beads
    det = np.array([b["detected_px"] for b in res.profile["beads"] if b["used"]])
    d = np.linalg.norm(det[:, None] - sim.spurious_px[None], axis=2)
    assert np.min(d) > 1.0


@pytest.mark.parametrize("rotation, flip", [(90, False), (180, True), (33, False), (-61, True)])
def test_rotated_and_mirrored_phantom(phantom, rotation, flip):
    sim, res = _run(phantom, 12, rotation_deg=rotation, flip=flip, hide_fraction=0.2)
    _check_names(sim, res, 0.9)
    assert res.flip == flip
    assert res.profile["flip_horizontal"] == flip
    assert res.rotation_deg == int(90 * round(rotation / 90)) % 360


def test_hidden_list_names_missing_beads(phantom):
    sim, res = _run(phantom, 13, hide_fraction=0.3)
    hidden = set(res.profile["beads_hidden"])
    truly_hidden = {i for i in sim.hidden}
    # most beads reported hidden were hidden in the simulation
    assert len(hidden & truly_hidden) >= 0.9 * len(hidden)
    assert not (hidden & set(sim.true_px))


def test_anatomy_over_the_phantom(phantom):
    from simulation.phantom_frames import synthetic_anatomy

    sim, res = _run(phantom, 14, anatomy=synthetic_anatomy(512, 512, rng=1), hide_fraction=0.1)
    _check_names(sim, res, 0.6)
    s = np.array(res.profile["source_mm"])
    assert np.linalg.norm(s - np.array(sim.geometry.source_mm)) < 5.0
