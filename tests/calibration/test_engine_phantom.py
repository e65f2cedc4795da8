"""Phantom definitions: shipped files and strict validation of admin-made ones."""

import json

import numpy as np
import pytest

from calibration.engine.phantom import (
    PhantomError,
    builtin_phantom,
    load_phantom,
    phantom_from_dict,
)
from calibration.engine.phantom_grid import analyse_grid


def test_shipped_clipon_phantom():
    p = builtin_phantom("clipon_two_layer")
    near, far = p.xyz[p.planes == 0], p.xyz[p.planes == 1]
    assert len(near) >= 200 and len(far) >= 30
    assert np.all(near[:, 2] < 0) and np.all(far[:, 2] < 0)
    assert np.median(near[:, 2]) - np.median(far[:, 2]) >= 60
    # covers a 230 mm field
    assert np.max(np.linalg.norm(near[:, :2], axis=1)) >= 115
    g = analyse_grid(p)
    assert g.pitch_mm == pytest.approx(12.0)
    assert 0.1 < g.large.mean() < 0.3
    assert len(set(p.ids)) == len(p.ids)


def test_shipped_dot_grid_plate():
    p = builtin_phantom("dot_grid_plate")
    assert not p.has_far_layer
    g = analyse_grid(p)
    assert g.pitch_mm == pytest.approx(10.0)


def _minimal(n=16):
    beads = [
        {
            "id": f"b{i}",
            "xyz_mm": [10.0 * (i % 4), 10.0 * (i // 4), -10.0],
            "diameter_mm": 2,
            "plane": 0,
        }
        for i in range(n)
    ]
    return {"name": "test", "beads": beads}


@pytest.mark.parametrize(
    "mutate, message",
    [
        (
            lambda d: d["beads"].append(dict(d["beads"][0], xyz_mm=[99, 99, -10])),
            "duplicate bead id 'b0'",
        ),
        (lambda d: d["beads"][3].pop("diameter_mm"), "bead #3 is missing field 'diameter_mm'"),
        (lambda d: d["beads"][2].update(plane=2), "'plane' must be 0 or 1"),
        (lambda d: d["beads"][2].update(plane=True), "'plane' must be 0 or 1"),
        (lambda d: d["beads"][1].update(xyz_mm=[0, 0, 5]), "z must be negative"),
        (lambda d: d["beads"][1].update(xyz_mm=[0, 0]), "list of three numbers"),
        (lambda d: d["beads"][1].update(diameter_mm="big"), "must be a number"),
        (lambda d: d.update(beads=d["beads"][:7]), "has 7 beads; at least 12 needed"),
        (lambda d: d.pop("name"), "non-empty string field 'name'"),
        (lambda d: d["beads"][5].update(xyz_mm=[0.0, 0.0, -10.0]), "same position"),
    ],
)
def test_validation_messages(mutate, message):
    d = _minimal()
    mutate(d)
    with pytest.raises(PhantomError, match=message.replace("(", r"\(")):
        phantom_from_dict(d)


def test_far_layer_must_be_far_enough_and_numerous():
    d = _minimal()
    d["beads"] += [
        {"id": f"f{i}", "xyz_mm": [i * 7.0, 3.0, -15.0], "diameter_mm": 2, "plane": 1}
        for i in range(6)
    ]
    with pytest.raises(PhantomError, match="at least 20 mm further"):
        phantom_from_dict(d)
    d["beads"] = d["beads"][:16] + [
        {"id": "f0", "xyz_mm": [1.0, 3.0, -90.0], "diameter_mm": 2, "plane": 1}
    ]
    with pytest.raises(PhantomError, match="1 plane-1 beads; at least 6"):
        phantom_from_dict(d)


def test_load_errors(tmp_path):
    with pytest.raises(PhantomError, match="not found"):
        load_phantom(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(PhantomError, match="not valid JSON"):
        load_phantom(bad)
    good = tmp_path / "good.json"
    good.write_text(json.dumps(_minimal()))
    assert len(load_phantom(good).beads) == 16


def test_grid_analysis_needs_two_sizes():
    with pytest.raises(PhantomError, match="two sizes"):
        analyse_grid(phantom_from_dict(_minimal()))
