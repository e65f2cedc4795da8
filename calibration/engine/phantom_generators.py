"""Generators of the shipped phantom definitions (run once; the JSON files are committed).

:func:`write_builtin_phantoms` writes ``calibration/phantoms/*.json`` (detector frame, mm)
for the clip-on two-layer phantom, the dot-grid plate and the hole-grid dewarping plate.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .phantom import PHANTOM_DIR, Bead, GridPlate, Phantom
from .phantom_grid import square_symmetries


def _code_pattern(ij: np.ndarray, rng: np.random.Generator, fraction: float) -> np.ndarray:
    """Random large-bead code without symmetry: reject draws that match any non-trivial
    rotation/mirror of themselves on more than 80 % of the large beads."""
    keys = {tuple(v): k for k, v in enumerate(ij)}
    mats = square_symmetries()[1:]
    for _ in range(200):
        large = rng.random(len(ij)) < fraction
        ok = True
        for m in mats:
            mapped = ij[large] @ m.T
            hits = sum(1 for v in mapped if tuple(v) in keys and large[keys[tuple(v)]])
            if hits > 0.5 * large.sum():
                ok = False
                break
        if ok:
            return large
    raise RuntimeError("could not draw a non-symmetric code")



def make_clipon_phantom(
    field_mm: float = 230.0,
    pitch_mm: float = 12.0,
    z_near: float = -10.0,
    z_far: float = -80.0,
    small_mm: float = 2.0,
    large_mm: float = 3.5,
    far_mm: float = 2.5,
    nominal_sid_mm: float = 1000.0,
    seed: int = 20261121,
) -> Phantom:
    """Two-layer clip-on phantom covering a ``field_mm`` image-intensifier field.

    Near layer: square grid at ``z_near``; ~15 % large beads form a non-symmetric code.
    Far layer: ``z_far``, beads placed so that, seen from a source ``nominal_sid_mm``
    above the detector, they project onto cell centres of the near grid (never on top
    of near beads), in a random, non-periodic subset of cells.
    """
    rng = np.random.default_rng(seed)
    r_max = field_mm / 2 * (nominal_sid_mm + z_near) / nominal_sid_mm + pitch_mm
    n = int(np.ceil(r_max / pitch_mm))
    ij = np.array([(i, j) for j in range(-n, n + 1) for i in range(-n, n + 1)])
    keep = np.linalg.norm(ij * pitch_mm, axis=1) <= r_max
    ij = ij[keep]
    large = _code_pattern(ij, rng, 0.15)
    beads = []
    for (i, j), big in zip(ij, large, strict=True):
        beads.append(
            Bead(
                f"N{i:+03d}{j:+03d}",
                (i * pitch_mm, j * pitch_mm, z_near),
                large_mm if big else small_mm,
                0,
            )
        )
    # far layer at cell centres seen through the nominal source
    m_near = nominal_sid_mm / (nominal_sid_mm + z_near)
    m_far = nominal_sid_mm / (nominal_sid_mm + z_far)
    cells = np.array(
        [(i + 0.5, j + 0.5) for j in range(-n, n) for i in range(-n, n)], dtype=np.float64
    )
    proj = cells * pitch_mm * m_near
    inside = np.linalg.norm(proj, axis=1) <= field_mm / 2 - 1.5 * pitch_mm
    cells = cells[inside]
    chosen = cells[rng.random(len(cells)) < 0.22]
    for k, (ci, cj) in enumerate(chosen):
        x = ci * pitch_mm * m_near / m_far
        y = cj * pitch_mm * m_near / m_far
        beads.append(Bead(f"F{k:02d}", (round(x, 3), round(y, 3), z_far), far_mm, 1))
    return Phantom(
        "OrthoFuse clip-on two-layer phantom",
        beads,
        description=(
            f"Two-layer clip-on phantom for a {field_mm:.0f} mm image intensifier: plane 0 is a "
            f"{pitch_mm:.0f} mm grid of {small_mm} mm steel beads at z={z_near} mm with a code of "
            f"{large_mm} mm beads; plane 1 holds {len(chosen)} {far_mm} mm beads at z={z_far} mm."
        ),
    )


def make_dot_grid_plate(
    field_mm: float = 240.0,
    pitch_mm: float = 10.0,
    z: float = -5.0,
    small_mm: float = 1.5,
    large_mm: float = 3.0,
) -> Phantom:
    """Single-plane dot-grid plate (dewarp only) with an L-shaped marker of large dots."""
    n = int(np.ceil(field_mm / 2 / pitch_mm))
    marker = {(0, 0), (1, 0), (2, 0), (0, 1), (-3, -2), (3, 4), (-5, 3), (6, -4), (-2, 7), (-7, -6)}
    beads = []
    for j in range(-n, n + 1):
        for i in range(-n, n + 1):
            if np.hypot(i, j) * pitch_mm > field_mm / 2:
                continue
            d = large_mm if (i, j) in marker else small_mm
            beads.append(Bead(f"G{i:+03d}{j:+03d}", (i * pitch_mm, j * pitch_mm, z), d, 0))
    return Phantom(
        "OrthoFuse dot-grid plate",
        beads,
        description=(
            f"Single-plane {pitch_mm:.0f} mm dot grid ({small_mm} mm dots, {large_mm} mm marker "
            "dots) for dewarping only: no far layer, so no effective source."
        ),
    )


def make_hole_grid_plate() -> Phantom:
    """Dewarping plate in the ``grid`` form: 3 mm square lattice of 1.2 mm holes."""
    return Phantom(
        "OrthoFuse hole-grid dewarping plate",
        [],
        description=(
            "Dewarping plate (distortion only): 1.2 mm holes on a 3 mm square lattice in a "
            "brass plate at the detector; position and rotation are fitted."
        ),
        grid=GridPlate("square", 3.0, "hole", 1.2),
    )


def write_builtin_phantoms(directory: Path = PHANTOM_DIR) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for stem, ph in (
        ("clipon_two_layer", make_clipon_phantom()),
        ("dot_grid_plate", make_dot_grid_plate()),
        ("hole_grid_plate", make_hole_grid_plate()),
    ):
        (directory / f"{stem}.json").write_text(json.dumps(ph.to_dict(), indent=1) + "\n")
