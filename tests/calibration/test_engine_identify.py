"""General two-layer identification from phantom.json alone: random layouts never seen."""

import numpy as np
import pytest

from calibration.bench.layouts import judge, layout_frame, random_two_layer_phantom
from calibration.engine.calibrate import CalibrationError, calibrate
from calibration.engine.phantom import Bead, Phantom, phantom_from_dict
from simulation.phantom_frames import synthetic_anatomy


@pytest.mark.parametrize("layout", ["square", "hex", "irregular"])
@pytest.mark.parametrize("coding", ["large", "missing", "outline"])
def test_generator_draws_valid_phantoms(layout, coding):
    ph, info = random_two_layer_phantom(np.random.default_rng(5), layout=layout, coding=coding)
    assert info["layout"] == layout and info["coding"] == coding
    near = ph.xyz[ph.planes == 0]
    far = ph.xyz[ph.planes == 1]
    assert len(near) >= 50 and len(far) >= 6
    assert np.median(near[:, 2]) - np.median(far[:, 2]) >= 40
    d = ph.diameters[ph.planes == 0]
    if coding == "large":
        assert d.max() / d.min() >= 1.3
    else:
        assert d.max() == d.min()
    assert phantom_from_dict(ph.to_dict()).ids == ph.ids


CASES = [
    # (layout, coding, seed, hidden, anatomy)
    ("square", "missing", 11, 0.0, False),
    ("square", "large", 12, 0.3, True),
    ("hex", "large", 13, 0.0, False),
    ("hex", "outline", 14, 0.3, False),
    ("hex", "missing", 15, 0.0, True),
    ("square", "outline", 16, 0.0, False),
    ("irregular", "none", 17, 0.3, True),
]


@pytest.mark.parametrize("layout, coding, seed, hidden, anatomy", CASES)
def test_random_layout_is_identified_and_calibrated(layout, coding, seed, hidden, anatomy):
    rng = np.random.default_rng(seed)
    ph, info = random_two_layer_phantom(rng, layout=layout, coding=coding)
    an = synthetic_anatomy(512, 512, rng=seed) if anatomy else None
    sim = layout_frame(ph, rng, size=512, hide_fraction=hidden, anatomy=an)
    res = calibrate(sim.image, ph, sim.geometry.spacing)
    j = judge(sim, res, ph)
    assert j["wrong_ids"] == 0
    assert j["dewarp_rms_mm"] < 0.05 and j["dewarp_max_mm"] < 0.15
    assert j["source_lateral_mm"] < 0.6 and j["source_axial_mm"] < 6.0
    assert res.flip == sim.flip and res.rotation_deg == int(sim.rotation_deg) % 360


def test_any_rotation_is_identified():
    rng = np.random.default_rng(21)
    ph, _ = random_two_layer_phantom(rng, layout="hex", coding="large")
    sim = layout_frame(ph, rng, size=512, rotation_deg=37.0, flip=False)
    res = calibrate(sim.image, ph, sim.geometry.spacing)
    assert judge(sim, res, ph)["wrong_ids"] == 0
    assert res.profile["phantom_rotation_deg"] == pytest.approx(37.0, abs=1.5)


def _symmetric_phantom(far_scatter: bool, large_pairs=()):
    """Square near grid (circular outline) with far beads either on a centred grid
    (symmetric under 90 degree turns and mirrors) or scattered without symmetry."""
    beads = []
    for j in range(-12, 13):
        for i in range(-12, 13):
            if np.hypot(i, j) * 10 <= 125:
                d = 3.0 if (i, j) in large_pairs else 2.0
                beads.append(Bead(f"N{i:+03d}{j:+03d}", (i * 10.0, j * 10.0, -10.0), d, 0))
    # far beads seen through a nominal source at near-grid cell centres (no overlap)
    half = np.array([-6.5, -4.5, -2.5, -0.5, 0.5, 2.5, 4.5, 6.5])
    cells = np.array([(a, b) for a in half for b in half])
    if far_scatter:
        rng = np.random.default_rng(3)
        cells = np.array([(a + 0.0, b) for a in np.arange(-7.5, 8) for b in np.arange(-7.5, 8)])
        cells = cells[rng.random(len(cells)) < 0.12]
    m_near, m_far = 1000 / 990, 1000 / 920
    pts = cells * 10.0 * m_near / m_far
    pts = pts[np.linalg.norm(pts, axis=1) <= 95]
    for k, (x, y) in enumerate(pts):
        beads.append(Bead(f"F{k:02d}", (float(x), float(y), -80.0), 2.5, 1))
    return phantom_from_dict(Phantom("symmetric test phantom", beads).to_dict())


def test_truly_ambiguous_orientation_is_refused_with_what_to_do():
    ph = _symmetric_phantom(far_scatter=False)
    sim = layout_frame(ph, np.random.default_rng(4), size=512, rotation_deg=0.0, flip=False)
    with pytest.raises(
        CalibrationError, match="ambiguous.*rotate the phantom so that at least three coded"
    ):
        calibrate(sim.image, ph, sim.geometry.spacing)


def test_far_layer_decides_what_the_code_leaves_open():
    # a code symmetric under a half turn: the near layer alone cannot tell 0 from 180 deg
    code = {(3, 1), (-3, -1), (5, -4), (-5, 4), (1, 6), (-1, -6)}
    ph = _symmetric_phantom(far_scatter=True, large_pairs=code)
    for rot in (0.0, 180.0):
        sim = layout_frame(ph, np.random.default_rng(5), size=512, rotation_deg=rot, flip=False)
        res = calibrate(sim.image, ph, sim.geometry.spacing)
        assert judge(sim, res, ph)["wrong_ids"] == 0
        assert res.rotation_deg == int(rot)
        ident = res.profile["identification"]
        assert not ident["code_decided"] and ident["decided_by"] == "far layer"


def test_image_of_another_phantom_is_refused():
    rng = np.random.default_rng(31)
    a, _ = random_two_layer_phantom(rng, layout="irregular")
    b, _ = random_two_layer_phantom(np.random.default_rng(32), layout="irregular")
    sim = layout_frame(a, rng, size=512)
    with pytest.raises(CalibrationError):
        calibrate(sim.image, b, sim.geometry.spacing)


def test_calibrate_carm_with_a_hospital_phantom_json(tmp_path):
    """The command takes any two-layer phantom.json (here a hex layout with a code of
    missing beads) and an RF DICOM frame of it."""
    import json

    from django.core.management import call_command

    from tests.calibration.plate_helpers import write_rf

    rng = np.random.default_rng(41)
    ph, _ = random_two_layer_phantom(rng, layout="hex", coding="missing")
    (tmp_path / "phantom.json").write_text(json.dumps(ph.to_dict()))
    sim = layout_frame(ph, rng, size=512)
    img = np.clip(sim.image / sim.image.max() * 4000, 0, 4095)
    write_rf(tmp_path / "frame.dcm", img, [0.5, 0.5], sdd=1000)
    out = tmp_path / "profile.json"
    call_command("calibrate_carm", image=str(tmp_path / "frame.dcm"), phantom=str(tmp_path / "phantom.json"), out=str(out))
    p = json.loads(out.read_text())
    assert p["source"] == "fitted" and p["identification"]["method"] == "general"
    s = np.array(p["source_mm"])
    assert np.linalg.norm(s[:2] - np.array(sim.geometry.source_mm[:2])) < 0.6
