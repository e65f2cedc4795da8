"""A bead phantom's near layer (plane 0) read as a square grid with a code of large beads.

The square-grid correspondence of :mod:`.correspond` needs the grid's integer indices,
pitch (mm) and large/small classes; :func:`square_symmetries` are the 8 rotations and
mirrors under which the code must stay unambiguous.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .phantom import Phantom, PhantomError


@dataclass
class GridInfo:
    """Plane-0 beads as a square grid: ``ij`` integer indices, ``pitch`` mm, ``large`` flags."""

    indices: np.ndarray  # positions in Phantom.beads of plane-0 beads
    ij: np.ndarray  # (N, 2) int
    pitch_mm: float
    origin_xy: np.ndarray  # mm, grid index (0, 0)
    large: np.ndarray  # (N,) bool
    small_diameter: float
    large_diameter: float


def analyse_grid(phantom: Phantom) -> GridInfo:
    """Describe plane 0 as a square grid; raises PhantomError if it is not one."""
    if phantom.grid is not None:
        raise PhantomError(f"phantom '{phantom.name}' is a grid plate, not a bead phantom")
    idx = np.flatnonzero(phantom.planes == 0)
    xy = phantom.xyz[idx, :2]
    d = np.linalg.norm(xy[:, None] - xy[None], axis=2)
    np.fill_diagonal(d, np.inf)
    pitch = float(np.median(d.min(axis=1)))
    # axis directions from nearest-neighbour vectors
    nn = d.argmin(axis=1)
    vec = xy[nn] - xy
    ang = np.mod(np.arctan2(vec[:, 1], vec[:, 0]), np.pi / 2)
    theta = float(np.angle(np.mean(np.exp(4j * ang))) / 4)
    rot = np.array([[np.cos(theta), np.sin(theta)], [-np.sin(theta), np.cos(theta)]])
    centre = xy[np.argmin(np.linalg.norm(xy - xy.mean(axis=0), axis=1))]
    local = (xy - centre) @ rot.T / pitch
    ij = np.round(local).astype(int)
    if np.max(np.abs(local - ij)) > 0.1 or abs(theta) > 1e-6:
        raise PhantomError(
            f"phantom '{phantom.name}': plane-0 beads must lie on an axis-aligned square grid"
        )
    if len({tuple(v) for v in ij}) != len(ij):
        raise PhantomError(f"phantom '{phantom.name}': two plane-0 beads share a grid position")
    diam = phantom.diameters[idx]
    dmin, dmax = float(diam.min()), float(diam.max())
    if dmax < 1.3 * dmin:
        raise PhantomError(
            f"phantom '{phantom.name}': plane 0 needs beads of two sizes (large at least 1.3x "
            "the small) so that the bead pattern can be named"
        )
    large = diam > np.sqrt(dmin * dmax)
    return GridInfo(idx, ij, pitch, centre, large, dmin, dmax)



def square_symmetries() -> list[np.ndarray]:
    """The 8 signed permutation matrices (identity first)."""
    out = []
    for perm in ((0, 1), (1, 0)):
        for sx in (1, -1):
            for sy in (1, -1):
                m = np.zeros((2, 2), dtype=int)
                m[0, perm[0]] = sx
                m[1, perm[1]] = sy
                out.append(m)
    out.sort(key=lambda m: not np.array_equal(m, np.eye(2, dtype=int)))
    return out

