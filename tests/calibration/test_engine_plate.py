"""Dewarping grid plates: phantom.json ``grid`` form, lattice indexing, distortion-only fit."""

import json

import numpy as np
import pytest

from calibration.engine.calibrate import CalibrationError, calibrate
from calibration.engine.dewarp import dewarp_image
from calibration.engine.lattice import index_lattice, lattice_fit_rms
from calibration.engine.phantom import (
    PhantomError,
    builtin_phantom,
    load_phantom,
    phantom_from_dict,
)
from calibration.engine.phantom_grid import analyse_grid
from calibration.engine.plate_lattice import measure_lattice_deviation
from simulation.phantom_frames import SimGeometry
from simulation.plate_frames import plate_distortion, simulate_plate_image
from tests.calibration.plate_helpers import SP, plate, small_frame


def _grid(**over):
    g = {"lattice": "square", "pitch_mm": 3.0, "marker": "hole", "diameter_mm": 1.2}
    g.update(over)
    return {"name": "plate", "grid": g}


def test_shipped_hole_plate_and_round_trip(tmp_path):
    p = builtin_phantom("hole_grid_plate")
    assert p.is_grid_plate and p.beads == [] and not p.has_far_layer
    assert p.grid.lattice == "square" and p.grid.marker == "hole"
    d = p.to_dict()
    assert set(d["grid"]) == {"lattice", "pitch_mm", "marker", "diameter_mm"} and "beads" not in d
    path = tmp_path / "plate.json"
    path.write_text(json.dumps(_grid(lattice="hex", marker="bead")))
    q = load_phantom(path)
    assert q.grid.lattice == "hex" and q.grid.marker == "bead"
    assert np.allclose(q.grid.basis_mm[:, 1], [1.5, 3.0 * np.sqrt(3) / 2])
    with pytest.raises(PhantomError, match="is a grid plate"):
        analyse_grid(q)


@pytest.mark.parametrize(
    "data, message",
    [
        (_grid(lattice="triangle"), r'grid lattice must be "square" or "hex"'),
        (_grid(marker="wire"), r'grid marker must be "bead" or "hole"'),
        (_grid(pitch_mm="3"), "grid pitch_mm must be a number"),
        (_grid(pitch_mm=0.1), "pitch_mm must be between 0.5 and 50 mm"),
        (_grid(diameter_mm=-1), "diameter_mm must be between 0.1 and 20 mm"),
        (_grid(diameter_mm=2.5), "would touch"),
        (_grid(spacing=3), "unknown grid field"),
        (dict(_grid(), beads=[]), "both 'grid' and 'beads'"),
        ({"name": "plate", "grid": [3.0]}, "'grid' must be a JSON object"),
        ({"name": "plate", "grid": {"lattice": "hex", "pitch_mm": 3}}, "missing field 'marker'"),
        ({"grid": _grid()["grid"]}, "non-empty string field 'name'"),
    ],
)
def test_plate_parsing_refusals(data, message):
    with pytest.raises(PhantomError, match=message):
        phantom_from_dict(data)


def _lattice_points(kind, rng, n_side=30, pitch=15.0, distort=0.0):
    """Lattice points rotated and shifted at random, with a smooth radial distortion,
    10 % missing and a few spurious points; returns (points, true ij, n_real)."""
    ang = rng.uniform(-np.pi, np.pi)
    turn = np.pi / 3 if kind == "hex" else np.pi / 2
    a = pitch * np.array([np.cos(ang), np.sin(ang)])
    b = pitch * np.array([np.cos(ang + turn), np.sin(ang + turn)])
    ii, jj = np.meshgrid(np.arange(-n_side, n_side + 1), np.arange(-n_side, n_side + 1))
    ij = np.stack([ii.ravel(), jj.ravel()], 1)
    p = ij @ np.column_stack([a, b]).T + rng.uniform(-pitch, pitch, 2) + 400
    q = p - 400
    r2 = np.sum(q**2, 1, keepdims=True) / 300.0**2
    p = 400 + q * (1 + distort * r2)
    inside = np.linalg.norm(p - 400, axis=1) < 330
    keep = inside & (rng.random(len(p)) > 0.1)
    p, ij = p[keep], ij[keep]
    p = p + rng.normal(scale=0.1, size=p.shape)
    spur = 400 + rng.uniform(-250, 250, size=(15, 2))
    return np.vstack([p, spur]), ij, len(p)


@pytest.mark.parametrize("kind", ["square", "hex"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_lattice_recovery_with_random_offset_and_rotation(kind, seed):
    rng = np.random.default_rng(seed)
    pts, ij_true, n_real = _lattice_points(kind, rng, distort=0.02)
    lat = index_lattice(pts, np.array([400.0, 400.0]), 15.0, kind)
    real = lat.point_index < n_real
    # a spurious point can only take the place of a missing marker (within 0.3 pitch)
    assert real.sum() >= 0.97 * n_real and (~real).sum() <= 3
    got, want = lat.ij[real], ij_true[lat.point_index[real]]
    # the indices found are the true ones up to a symmetry of the lattice and a shift
    design = np.column_stack([got, np.ones(len(got))])
    coef, *_ = np.linalg.lstsq(design, want, rcond=None)
    assert np.allclose(design @ coef, want, atol=1e-6)
    assert np.allclose(coef, np.round(coef), atol=1e-6)
    assert abs(round(np.linalg.det(coef[:2]))) == 1


@pytest.mark.parametrize("seed", [3, 4])
def test_plate_frame_calibration_random_pose(seed):
    rng = np.random.default_rng(seed)
    ph = plate()
    angle, offset = rng.uniform(-180, 180), tuple(rng.uniform(-5, 5, 2))
    sim = small_frame(ph, seed=seed, angle_deg=angle, offset_mm=offset)
    res = calibrate(sim.image, ph, (SP, SP), sdd_mm=1100.0)
    p = res.profile
    assert p["source"] == "nominal" and p["source_mm"] == [0.0, 0.0, -1100.0]
    k = np.array(p["K"])
    assert k[0, 2] == pytest.approx(255.5) and k[1, 2] == pytest.approx(255.5)
    assert k[0, 0] == pytest.approx(1100.0 / SP)
    assert p["forward"]["order"] in (3, 4, 5)
    # lattice direction found = the plate's rotation (modulo the square's 90 degrees)
    d = (p["lattice"]["angle_deg"] - angle + 45) % 90 - 45
    assert abs(d) < 0.2
    # every truly visible marker (inside the field) maps onto a perfect lattice
    c = np.array(sim.fov_centre_px)
    sel = np.linalg.norm(sim.true_px - c, axis=1) < 0.8 * sim.fov_radius_px
    basis = ph.grid.basis_mm / SP
    raw, _ = lattice_fit_rms(sim.ij[sel], sim.true_px[sel], basis)
    fixed, _ = lattice_fit_rms(
        sim.ij[sel], res.forward.apply(sim.true_px[sel]), basis, free_scale=False
    )
    assert raw > 0.3 and fixed < 0.05
    assert p["beads_used"] >= 0.9 * len(sim.ij)


def test_markers_cut_by_the_field_edge_are_dropped():
    ph = plate()
    sim = small_frame(ph, seed=5)
    res = calibrate(sim.image, ph, (SP, SP), sdd_mm=1000.0)
    det = np.array([b["detected_px"] for b in res.profile["beads"]])
    assert len(sim.cut_px) > 20
    d_cut = np.min(np.linalg.norm(det[:, None] - sim.cut_px[None], axis=2), axis=1)
    assert np.all(d_cut > 3.0)
    d_true = np.min(np.linalg.norm(det[:, None] - sim.true_px[None], axis=2), axis=1)
    assert np.all(d_true < 0.3)


@pytest.mark.parametrize(
    "lattice, marker", [("square", "hole"), ("square", "bead"), ("hex", "hole"), ("hex", "bead")]
)
def test_hole_and_bead_plates_square_and_hex(lattice, marker):
    ph = plate(lattice, marker, diameter=1.2 if marker == "hole" else 1.0)
    sim = small_frame(ph, seed=7, strength=2.0)
    res = calibrate(sim.image, ph, (SP, SP), sdd_mm=1000.0)
    assert res.profile["beads_bright"] is (marker == "hole")
    assert res.profile["lattice"]["kind"] == lattice
    c = np.array(sim.fov_centre_px)
    sel = np.linalg.norm(sim.true_px - c, axis=1) < 0.8 * sim.fov_radius_px
    rms, _ = lattice_fit_rms(
        sim.ij[sel], res.forward.apply(sim.true_px[sel]), ph.grid.basis_mm / SP
    )
    assert rms < 0.05


def test_inverted_display_and_octagonal_field():
    ph = plate()
    sim = small_frame(ph, seed=8, fov_shape="octagon")
    inverted = 4095 - sim.image.astype(np.float64)
    res = calibrate(inverted, ph, (SP, SP), photometric="MONOCHROME1")
    assert res.profile["source_mm"] == [0.0, 0.0, -1000.0]
    assert "default" in res.profile["source_to_detector_origin"]
    # without the photometric hint the darker field says the image is inverted
    res2 = calibrate(inverted, ph, (SP, SP))
    assert res2.profile["beads_used"] == pytest.approx(res.profile["beads_used"], rel=0.02)


def test_dewarped_plate_frame_is_a_perfect_lattice():
    """The goal on a realistic 1024 x 1024 frame: raw 0.8-0.9 px off, dewarped < 0.25 px."""
    ph = builtin_phantom("hole_grid_plate")
    g = SimGeometry(1024, 1024, (SP, SP))
    sim = simulate_plate_image(ph, g, plate_distortion(11, radius_mm=0.478 * 1024 * SP), rng=11)
    assert len(sim.ij) > 2500 and len(sim.cut_px) > 100
    assert sim.image.dtype == np.uint16 and sim.image.max() < 4096
    res = calibrate(sim.image, ph, (SP, SP), sdd_mm=1000.0)
    raw = measure_lattice_deviation(sim.image, ph.grid, (SP, SP))
    assert 0.7 < raw["rms_px"] < 1.0
    out = dewarp_image(sim.image, res.profile)
    centre = res.forward.apply(np.array([sim.fov_centre_px]))[0]
    dw = measure_lattice_deviation(
        out, ph.grid, (SP, SP), field_centre=centre, field_radius=sim.fov_radius_px
    )
    assert dw["n_markers"] > 1500 and dw["rms_px"] < 0.25


def test_plate_refusals():
    ph = plate()
    sim = small_frame(ph, seed=9)
    with pytest.raises(CalibrationError, match="wrong plate or wrong pixel spacing"):
        calibrate(sim.image, ph, (0.3, 0.3))
    with pytest.raises(CalibrationError, match="image is blank"):
        calibrate(np.full((512, 512), 900.0), ph, (SP, SP))
    with pytest.raises(CalibrationError, match="source-to-detector distance"):
        calibrate(sim.image, ph, (SP, SP), sdd_mm=20.0)
    # a clip-on phantom image is no plate of this pitch
    from simulation.phantom_frames import simulate_phantom_image

    clip = simulate_phantom_image(
        builtin_phantom("clipon_two_layer"), SimGeometry(512, 512, (0.5, 0.5)), rng=1
    )
    with pytest.raises(CalibrationError):
        calibrate(clip.image, ph, (0.5, 0.5))
    # half of the field covered: a quadrant without markers
    img = sim.image.copy()
    img[256:, :256] = 60
    with pytest.raises(CalibrationError, match="quadrant"):
        calibrate(img, ph, (SP, SP))
