"""Drawing a calibration phantom from a few parameters (no Django imports).

:func:`draw_phantom` turns a :class:`PhantomDesign` into ``phantom.json`` content and
validates it with the engine's own parser (:func:`calibration.engine.phantom.phantom_from_dict`),
so a drawn phantom meets exactly the rules of an uploaded one.

* ``kind="plate"``: a dewarping grid plate in the ``grid`` form (square or hexagonal
  lattice of beads or holes at the detector); ``extent_mm`` is the diameter of the
  marker area, kept under ``design`` for the preview.
* ``kind="two-layer"``: a near layer (square or hexagonal lattice, ``near_height_mm``
  above the detector) coded by larger beads (``size_ratio`` x the bead diameter, about
  ``code_fraction`` of the beads, in a pattern with no rotation or mirror symmetry of the
  lattice), and a far layer ``layer_gap_mm`` further toward the source on a square
  lattice of ``far_pitch_mm`` shifted by ``far_offset_mm`` along x and y, covering the
  near layer's field as seen from a nominal source ``NOMINAL_SDD_MM`` above the detector.

Positions are in the detector frame of CONVENTIONS.md (mm, z < 0 toward the source).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from calibration.engine.phantom import phantom_from_dict
from refusal import Refused

KINDS = ("two-layer", "plate")
LATTICES = ("square", "hex")
MARKERS = ("bead", "hole")
TWO_LAYER_ONLY = ("near_height_mm", "layer_gap_mm", "far_pitch_mm", "far_offset_mm", "size_ratio", "code_fraction")
MAX_BEADS = 1500
CODE_FRACTION = 0.15
MIN_LAYER_GAP_MM = 20.0  # the engine's rule for plane 1 (calibration.engine.phantom)
MIN_BEAD_MM = 0.2  # the engine's smallest bead; a plate's holes may be smaller
CODE_SEED = 20260126
NOMINAL_SDD_MM = 1000.0


class DesignError(Refused):
    """The drawing parameters cannot make a phantom; the message names the parameter."""


@dataclass(frozen=True)
class PhantomDesign:
    """The parameters of a drawn phantom (lengths in mm)."""

    name: str
    kind: str = "plate"
    lattice: str = "square"
    pitch_mm: float = 10.0
    diameter_mm: float = 2.0
    extent_mm: float = 200.0
    marker: str = "bead"
    near_height_mm: float = 10.0
    layer_gap_mm: float = 70.0
    far_pitch_mm: float = 25.0
    far_offset_mm: float = 5.0
    size_ratio: float = 1.75
    code_fraction: float = CODE_FRACTION


def _check_number(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise DesignError(f"{what} must be a number, got {value!r}")
    return float(value)


def _check_range(value: object, low: float, high: float, what: str, unit: str = " mm") -> float:
    number = _check_number(value, what)
    if not low <= number <= high:
        raise DesignError(f"{what} must be between {low:g} and {high:g}{unit}, got {number:g}")
    return number


def _check_two_layer(d: PhantomDesign) -> None:
    """The parameters of the coded near layer and of the far layer."""
    _check_range(d.diameter_mm, MIN_BEAD_MM, 20, "the bead diameter")
    _check_range(d.near_height_mm, 0.5, 200, "the near layer's height above the detector")
    _check_range(
        d.layer_gap_mm, MIN_LAYER_GAP_MM, 500,
        "the gap between the layers (the far layer tells the source only from 20 mm)",
    )  # fmt: skip
    _check_range(d.far_pitch_mm, 2, 100, "the far pitch")
    if abs(_check_number(d.far_offset_mm, "the far offset")) > d.far_pitch_mm:
        raise DesignError(
            f"the far offset must be within ± the far pitch ({d.far_pitch_mm:g} mm), "
            f"got {d.far_offset_mm:g}"
        )
    _check_range(
        d.size_ratio, 1.3, 4,
        "the size ratio of the coded beads (the engine tells sizes apart from 1.3)", unit="",
    )  # fmt: skip
    _check_range(d.code_fraction, 0.04, 0.3, "the fraction of coded beads", unit="")
    large = d.diameter_mm * d.size_ratio
    if large > 0.7 * d.pitch_mm:
        raise DesignError(
            f"coded beads of {large:g} mm ({d.size_ratio:g} x {d.diameter_mm:g} mm) on a "
            f"{d.pitch_mm:g} mm pitch would nearly touch: make them at most 0.7 x the pitch"
        )


def _check_design(d: PhantomDesign) -> None:
    """Refuse parameters the drawing cannot use, naming the parameter (the engine's
    parser checks the drawn phantom again)."""
    if not isinstance(d.name, str) or not d.name.strip():
        raise DesignError("the phantom needs a name")
    if d.kind not in KINDS:
        raise DesignError(f'kind must be "two-layer" or "plate", got {d.kind!r}')
    if d.lattice not in LATTICES:
        raise DesignError(f'lattice must be "square" or "hex", got {d.lattice!r}')
    _check_range(d.pitch_mm, 0.5, 50, "the pitch")
    _check_range(d.diameter_mm, 0.1, 20, "the bead or hole diameter")
    _check_range(d.extent_mm, 10, 500, "the extent")
    if d.extent_mm < 4 * d.pitch_mm:
        raise DesignError(
            f"an extent of {d.extent_mm:g} mm holds too few markers at a {d.pitch_mm:g} mm "
            "pitch: make the extent at least 4 x the pitch"
        )
    if d.kind == "plate":
        if d.marker not in MARKERS:
            raise DesignError(f'the plate marker must be "bead" or "hole", got {d.marker!r}')
        if d.diameter_mm > 0.7 * d.pitch_mm:
            raise DesignError(
                f"markers of {d.diameter_mm:g} mm on a {d.pitch_mm:g} mm pitch would touch: "
                "make the diameter at most 0.7 x the pitch"
            )
        return
    _check_two_layer(d)


def lattice_points(lattice: str, pitch_mm: float, radius_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """Lattice nodes within ``radius_mm`` of the origin: ``(xy (N, 2) mm, ij (N, 2) int)``.

    Square basis (p, 0), (0, p); hexagonal basis (p, 0), (p/2, p*sqrt(3)/2), as the
    engine's :class:`~calibration.engine.phantom.GridPlate`."""
    row = pitch_mm * (math.sqrt(3) / 2 if lattice == "hex" else 1.0)
    n_j = int(radius_mm // row) + 1
    n_i = int(radius_mm // pitch_mm) + n_j + 1
    j, i = np.mgrid[-n_j : n_j + 1, -n_i : n_i + 1]
    ij = np.stack([i.ravel(), j.ravel()], axis=1)
    shear = 0.5 if lattice == "hex" else 0.0
    xy = np.stack([(ij[:, 0] + shear * ij[:, 1]) * pitch_mm, ij[:, 1] * row], axis=1)
    keep = np.hypot(xy[:, 0], xy[:, 1]) <= radius_mm + 1e-9
    return xy[keep], ij[keep]


def _symmetry_maps(lattice: str) -> list[np.ndarray]:
    """The lattice's rotations and mirrors about the origin, identity left out."""
    step = 60 if lattice == "hex" else 90
    maps = []
    for deg in range(0, 360, step):
        t = math.radians(deg)
        rot = np.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]])
        maps.append(rot)
        maps.append(rot @ np.diag([1.0, -1.0]))
    return maps[1:]


def coded_beads(
    xy: np.ndarray, lattice: str, pitch_mm: float, fraction: float = CODE_FRACTION
) -> np.ndarray:
    """(N,) bool: the larger beads, ``fraction`` of them and at least 3, drawn (seeded)
    until no rotation or mirror of the lattice maps more than half of them onto each other."""
    rng = np.random.default_rng(CODE_SEED)
    n_large = min(len(xy), max(3, round(fraction * len(xy))))
    maps = _symmetry_maps(lattice)
    tol = 0.1 * pitch_mm
    for _ in range(500):
        large = np.zeros(len(xy), bool)
        large[rng.choice(len(xy), size=n_large, replace=False)] = True
        pts = xy[large]
        ok = True
        for m in maps:
            moved = pts @ m.T
            d = np.linalg.norm(moved[:, None] - pts[None], axis=2)
            if np.sum(d.min(axis=1) < tol) > 0.5 * n_large:
                ok = False
                break
        if ok:
            return large
    raise DesignError("no asymmetric code of larger beads fits this layout: make the extent larger")


def _bead(bid: str, x: float, y: float, z: float, diameter: float, plane: int) -> dict:
    return {
        "id": bid,
        "xyz_mm": [round(float(x), 4), round(float(y), 4), round(float(z), 4)],
        "diameter_mm": round(float(diameter), 4),
        "plane": plane,
    }


def _two_layer_beads(d: PhantomDesign) -> list[dict]:
    z_near = -d.near_height_mm
    z_far = z_near - d.layer_gap_mm
    xy, ij = lattice_points(d.lattice, d.pitch_mm, d.extent_mm / 2)
    if len(xy) > MAX_BEADS:
        raise DesignError(
            f"{len(xy)} near beads is more than {MAX_BEADS}: make the pitch larger or the extent smaller"
        )
    large = coded_beads(xy, d.lattice, d.pitch_mm, d.code_fraction)
    beads = [
        _bead(f"N{i:+03d}{j:+03d}", x, y, z_near, d.diameter_mm * (d.size_ratio if big else 1.0), 0)
        for (x, y), (i, j), big in zip(xy, ij, large, strict=True)
    ]
    # the far layer covers the same projected field as the near layer
    shrink = (NOMINAL_SDD_MM + z_far) / (NOMINAL_SDD_MM + z_near)
    radius = d.extent_mm / 2 * shrink
    fxy, _ = lattice_points("square", d.far_pitch_mm, radius + abs(d.far_offset_mm) * 1.5)
    fxy = fxy + d.far_offset_mm
    fxy = fxy[np.hypot(fxy[:, 0], fxy[:, 1]) <= radius]
    if len(beads) + len(fxy) > MAX_BEADS:
        raise DesignError(
            f"{len(beads) + len(fxy)} beads is more than {MAX_BEADS}: make the far pitch larger"
        )
    beads += [_bead(f"F{k:03d}", x, y, z_far, d.diameter_mm, 1) for k, (x, y) in enumerate(fxy)]
    return beads


def _description(d: PhantomDesign) -> str:
    if d.kind == "plate":
        return (
            f"Drawn dewarping plate: {d.diameter_mm:g} mm {d.marker}s on a {d.pitch_mm:g} mm "
            f"{d.lattice} lattice over {d.extent_mm:g} mm (distortion only)."
        )
    return (
        f"Drawn two-layer phantom: near layer {d.near_height_mm:g} mm above the detector, "
        f"{d.diameter_mm:g} mm beads on a {d.pitch_mm:g} mm {d.lattice} lattice over "
        f"{d.extent_mm:g} mm, coded by {d.size_ratio:g} x larger beads "
        f"({d.code_fraction:.0%} of them); far layer "
        f"{d.layer_gap_mm:g} mm further, {d.far_pitch_mm:g} mm square pitch, offset "
        f"{d.far_offset_mm:g} mm."
    )


def draw_phantom(design: PhantomDesign) -> dict:
    """``phantom.json`` content for ``design``, validated by the engine's parser.

    Raises :class:`DesignError` for parameters the drawing cannot use and the engine's
    :class:`~calibration.engine.phantom.PhantomError` for a phantom it would refuse."""
    _check_design(design)
    definition: dict = {"name": design.name.strip(), "description": _description(design)}
    params = asdict(design)
    del params["name"]
    if design.kind == "plate":
        for key in TWO_LAYER_ONLY:
            del params[key]
        definition["grid"] = {
            "lattice": design.lattice,
            "pitch_mm": float(design.pitch_mm),
            "marker": design.marker,
            "diameter_mm": float(design.diameter_mm),
        }
    else:
        del params["marker"]
        definition["beads"] = _two_layer_beads(design)
    definition["design"] = params
    phantom_from_dict(definition)
    return definition
