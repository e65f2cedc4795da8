"""Drawing a phantom from a few parameters (calibration.phantom_design, no Django): the
drawn phantom.json round-trips through the engine's parser, a drawn two-layer phantom
calibrates, the preview shows the markers where the nominal camera puts them, and bad
parameters are refused with a message naming the parameter."""

from __future__ import annotations

import json
import math

import cv2
import numpy as np
import pytest

from calibration.engine.phantom import phantom_from_dict
from calibration.phantom_design import (
    MAX_BEADS,
    NOMINAL_SDD_MM,
    DesignError,
    PhantomDesign,
    draw_phantom,
)
from calibration.phantom_preview import FAR, PreviewError, preview_png, project_phantom
from refusal import Refused

ROUND_MM = 5e-5  # draw_phantom rounds positions to 1e-4 mm


def _json_round_trip(definition: dict):
    """Parse ``definition`` after a trip through JSON text, as an upload would be."""
    return phantom_from_dict(json.loads(json.dumps(definition)))


@pytest.mark.parametrize("lattice", ["square", "hex"])
@pytest.mark.parametrize("marker", ["bead", "hole"])
def test_plate_round_trips_through_the_engine_parser(lattice, marker):
    design = PhantomDesign(name=" My plate ", kind="plate", lattice=lattice, marker=marker,
                           pitch_mm=3.0, diameter_mm=1.2, extent_mm=120.0)  # fmt: skip
    definition = draw_phantom(design)
    assert "beads" not in definition
    assert definition["grid"] == {"lattice": lattice, "pitch_mm": 3.0, "marker": marker, "diameter_mm": 1.2}
    phantom = _json_round_trip(definition)
    assert phantom.name == "My plate" and phantom.is_grid_plate and not phantom.has_far_layer
    assert phantom.grid.lattice == lattice and phantom.grid.marker == marker
    # the drawing parameters travel with the phantom (the preview reads the extent)
    assert phantom.extra["design"]["extent_mm"] == 120.0 and phantom.extra["design"]["kind"] == "plate"
    assert "size_ratio" not in phantom.extra["design"]
    again = phantom_from_dict(phantom.to_dict())
    assert again.grid == phantom.grid and again.extra == phantom.extra


def _lattice_indices(xy: np.ndarray, lattice: str, pitch: float) -> np.ndarray:
    """Fractional lattice indices (i, j) of points in the basis of CONVENTIONS' lattices."""
    row = pitch * (math.sqrt(3) / 2 if lattice == "hex" else 1.0)
    j = xy[:, 1] / row
    i = xy[:, 0] / pitch - (0.5 * j if lattice == "hex" else 0.0)
    return np.stack([i, j], axis=1)


@pytest.mark.parametrize("lattice", ["square", "hex"])
def test_two_layer_round_trips_and_is_coded(lattice):
    design = PhantomDesign(name="Drawn", kind="two-layer", lattice=lattice, pitch_mm=12.0,
                           diameter_mm=2.0, extent_mm=200.0, near_height_mm=12.0,
                           layer_gap_mm=60.0, far_pitch_mm=20.0, far_offset_mm=4.0,
                           size_ratio=1.6, code_fraction=0.12)  # fmt: skip
    definition = draw_phantom(design)
    assert "grid" not in definition
    phantom = _json_round_trip(definition)
    assert phantom_from_dict(phantom.to_dict()).ids == phantom.ids
    near, far = phantom.plane_mask(0), phantom.plane_mask(1)
    xyz, diam = phantom.xyz, phantom.diameters
    assert np.allclose(xyz[near, 2], -12.0) and np.allclose(xyz[far, 2], -72.0)
    # near beads on the lattice, inside the extent
    ij = _lattice_indices(xyz[near, :2], lattice, 12.0)
    assert np.abs(ij - np.round(ij)).max() * 12.0 < 2 * ROUND_MM
    assert np.hypot(xyz[near, 0], xyz[near, 1]).max() <= 100.0 + ROUND_MM
    # coding: two sizes in the requested ratio and fraction
    sizes = np.unique(diam[near])
    assert sizes.tolist() == pytest.approx([2.0, 3.2])
    coded = diam[near] > 2.5
    assert abs(coded.mean() - 0.12) <= 1.0 / near.sum()
    # no rotation or mirror of the lattice maps most coded beads onto coded beads
    pts = xyz[near][coded, :2]
    step = 60 if lattice == "hex" else 90
    for deg in range(0, 360, step):
        t = math.radians(deg)
        rot = np.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]])
        for m in (rot, rot @ np.diag([1.0, -1.0])):
            if deg == 0 and m is rot:
                continue
            d = np.linalg.norm((pts @ m.T)[:, None] - pts[None], axis=2).min(axis=1)
            assert np.sum(d < 1.0) <= 0.5 * len(pts), (deg, m)
    # far layer: a square lattice shifted by the offset, projecting inside the near field
    fxy = xyz[far, :2] - 4.0
    assert np.abs(fxy / 20.0 - np.round(fxy / 20.0)).max() * 20.0 < 2 * ROUND_MM
    seen = np.hypot(xyz[far, 0], xyz[far, 1]) * NOMINAL_SDD_MM / (NOMINAL_SDD_MM - 72.0)
    assert seen.max() <= 100.0 * NOMINAL_SDD_MM / (NOMINAL_SDD_MM - 12.0) + ROUND_MM
    assert far.sum() >= 6
    assert draw_phantom(design) == definition  # the code is seeded: the same drawing twice


@pytest.mark.parametrize("lattice", ["square", "hex"])
def test_drawn_two_layer_phantom_calibrates(lattice):
    """An image of a drawn phantom (random source, distortion, rotation, mirroring)
    calibrates: every bead named right and the source found."""
    from calibration.bench.layouts import judge, layout_frame
    from calibration.engine.calibrate import calibrate

    phantom = phantom_from_dict(draw_phantom(PhantomDesign(
        name="drawn", kind="two-layer", lattice=lattice, pitch_mm=12.0, extent_mm=240.0,
    )))  # fmt: skip
    sim = layout_frame(phantom, 5, size=512)
    result = calibrate(sim.image, phantom, sim.geometry.spacing)
    verdict = judge(sim, result, phantom)
    assert verdict["wrong_ids"] == 0, verdict
    near_in_view = sum(1 for bead_id in sim.true_px if bead_id.startswith("N"))
    assert verdict["beads_used"] >= 0.75 * near_in_view and verdict["far_used"] >= 6, verdict
    # goals of the calibration bench: dewarp well under 0.05 mm, source within 1 / 10 mm
    assert verdict["dewarp_rms_mm"] < 0.05, verdict
    assert verdict["source_lateral_mm"] < 1.0 and verdict["source_axial_mm"] < 10.0, verdict


@pytest.mark.parametrize(
    "changes, words",
    [
        ({"name": "  "}, "needs a name"),
        ({"kind": "three-layer"}, "kind must be"),
        ({"lattice": "triangle"}, "lattice must be"),
        ({"pitch_mm": 0.0}, "the pitch must be between"),
        ({"pitch_mm": float("nan")}, "the pitch must be a number"),
        ({"pitch_mm": True}, "the pitch must be a number"),
        ({"diameter_mm": 30.0}, "diameter must be between"),
        ({"extent_mm": 30.0}, "at least 4 x the pitch"),
        ({"kind": "plate", "marker": "dot"}, "plate marker"),
        ({"kind": "plate", "diameter_mm": 8.0}, "would touch"),
        ({"layer_gap_mm": 10.0}, "gap between the layers"),
        ({"near_height_mm": -5.0}, "near layer's height"),
        ({"size_ratio": 1.1}, "size ratio"),
        ({"size_ratio": 3.0, "diameter_mm": 3.0}, "nearly touch"),
        ({"code_fraction": 0.6}, "fraction of coded beads"),
        ({"far_offset_mm": 40.0}, "far offset"),
        ({"far_pitch_mm": 1.0}, "far pitch"),
        ({"diameter_mm": 0.15}, "bead diameter"),
        ({"pitch_mm": 3.0, "diameter_mm": 0.5, "extent_mm": 300.0}, f"more than {MAX_BEADS}"),
    ],
)
def test_bad_parameters_are_refused_by_name(changes, words):
    values = {"name": "bad", "kind": "two-layer"} | changes
    with pytest.raises(DesignError, match=words) as info:
        draw_phantom(PhantomDesign(**values))
    assert isinstance(info.value, Refused)


def test_a_far_layer_too_small_is_refused_by_the_engine_rules():
    """Parameters the drawing accepts but the engine's parser refuses (too few far
    beads) surface as the engine's refusal, also a Refused."""
    with pytest.raises(Refused, match="plane-1 beads"):
        draw_phantom(PhantomDesign(name="few", kind="two-layer", pitch_mm=5.0, extent_mm=40.0,
                                   diameter_mm=1.0, far_pitch_mm=30.0, far_offset_mm=0.0))  # fmt: skip


def test_preview_draws_the_markers_where_the_nominal_camera_projects_them():
    definition = draw_phantom(PhantomDesign(name="p", kind="two-layer", pitch_mm=12.0, extent_mm=200.0))
    proj = project_phantom(definition, size_px=512)
    phantom = phantom_from_dict(definition)
    assert len(proj) == len(phantom.beads)  # the whole phantom is in view
    image = cv2.imdecode(np.frombuffer(preview_png(definition, size_px=512), np.uint8), cv2.IMREAD_UNCHANGED)
    assert image.shape == (512, 512) and image.dtype == np.uint8
    # nominal camera: a bead at (x, y, z) lands at centre + x * SDD / (SDD + z) / spacing
    spacing = proj.field_mm / 512
    xyz = phantom.xyz
    mag = NOMINAL_SDD_MM / (NOMINAL_SDD_MM + xyz[:, 2])
    want = xyz[:, :2] * mag[:, None] / spacing + 255.5
    assert np.abs(np.sort(proj.uv, axis=0) - np.sort(want, axis=0)).max() < 1e-6
    near = proj.role != FAR
    centres = np.round(proj.uv[near]).astype(int)
    assert np.median(image[centres[:, 1], centres[:, 0]]) < 100  # beads dark
    assert np.median(image[:8, :8]) > 200  # the open field bright


def test_preview_of_a_hole_plate_shows_bright_holes_in_a_dark_plate():
    definition = draw_phantom(PhantomDesign(name="h", kind="plate", marker="hole", lattice="hex",
                                            pitch_mm=3.0, diameter_mm=1.2, extent_mm=100.0))  # fmt: skip
    proj = project_phantom(definition, size_px=384)
    image = cv2.imdecode(np.frombuffer(preview_png(definition, size_px=384), np.uint8), cv2.IMREAD_UNCHANGED)
    pitch_px = 3.0 / (proj.field_mm / 384)
    assert pitch_px >= 7.0  # the lattice stays legible: the view shows the centre then
    centres = np.round(proj.uv).astype(int)
    assert np.median(image[centres[:, 1], centres[:, 0]]) > 200
    between = np.round(proj.uv + [pitch_px / 2, 0]).astype(int)
    ok = np.all((between >= 0) & (between < 384), axis=1)
    assert np.median(image[between[ok, 1], between[ok, 0]]) < 100


def test_preview_refuses_beads_at_the_nominal_source():
    definition = draw_phantom(PhantomDesign(name="p", kind="two-layer", pitch_mm=12.0, extent_mm=200.0))
    definition["beads"][-1]["xyz_mm"][2] = -950.0  # a far bead 950 mm up: beyond the preview's reach
    with pytest.raises(PreviewError, match="950 mm above the detector") as info:
        preview_png(definition)
    assert isinstance(info.value, Refused)
