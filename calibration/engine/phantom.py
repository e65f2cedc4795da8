"""Calibration phantom definitions (``phantom.json`` of CONVENTIONS.md).

A phantom is described in the detector frame (mm): origin on the detector surface under
the image centre, +x along columns, +y along rows, +z from the source toward the
detector, so everything between source and detector has z < 0. Plane 0 is the layer
nearest the detector (distortion fit), plane 1 the far layer (effective source).

The correspondence engine needs plane 0 to be a square grid (possibly with holes) whose
beads come in two sizes; the large beads form a code that names each bead under any
rotation or mirror. Plane 1 is free-form but must not be periodic.

A dewarping grid plate (distortion only) is described instead by a ``grid`` object
(``{"lattice": "square" | "hex", "pitch_mm", "marker": "bead" | "hole", "diameter_mm"}``):
one plane of markers on a regular lattice at the detector whose position and in-plane
rotation are unknown; such a phantom has no bead list (``Phantom.grid`` is set).

This module holds the phantom types and the strict ``phantom.json`` parser; the square-grid
reading of plane 0 is :mod:`.phantom_grid`, the generators of the shipped files
:mod:`.phantom_generators`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from refusal import Refused

PHANTOM_DIR = Path(__file__).resolve().parent.parent / "phantoms"
MIN_BEADS = 12


class PhantomError(Refused):
    """A phantom definition is invalid; the message names the problem."""


@dataclass(frozen=True)
class Bead:
    id: str
    xyz_mm: tuple[float, float, float]
    diameter_mm: float
    plane: int


GRID_LATTICES = ("square", "hex")
GRID_MARKERS = ("bead", "hole")


@dataclass(frozen=True)
class GridPlate:
    """A dewarping plate: markers on a regular lattice at the detector (z = 0).

    ``lattice`` "square" (basis (p, 0), (0, p)) or "hex" (basis (p, 0), (p/2, p*sqrt(3)/2));
    ``marker`` "hole" (shows bright in a raw image) or "bead" (dark).
    """

    lattice: str
    pitch_mm: float
    marker: str
    diameter_mm: float

    @property
    def basis_mm(self) -> np.ndarray:
        """(2, 2) lattice basis as columns, mm, unrotated."""
        p = self.pitch_mm
        if self.lattice == "hex":
            return np.array([[p, p / 2], [0.0, p * np.sqrt(3) / 2]])
        return np.array([[p, 0.0], [0.0, p]])

    def to_dict(self) -> dict:
        return {
            "lattice": self.lattice,
            "pitch_mm": float(self.pitch_mm),
            "marker": self.marker,
            "diameter_mm": float(self.diameter_mm),
        }


@dataclass
class Phantom:
    name: str
    beads: list[Bead]
    description: str = ""
    extra: dict = field(default_factory=dict)
    grid: GridPlate | None = None

    @property
    def is_grid_plate(self) -> bool:
        return self.grid is not None

    @property
    def ids(self) -> list[str]:
        return [b.id for b in self.beads]

    def plane_mask(self, plane: int) -> np.ndarray:
        return np.array([b.plane == plane for b in self.beads])

    @property
    def xyz(self) -> np.ndarray:
        """(N, 3) bead centres in the detector frame, mm."""
        return np.array([b.xyz_mm for b in self.beads], dtype=np.float64)

    @property
    def diameters(self) -> np.ndarray:
        return np.array([b.diameter_mm for b in self.beads], dtype=np.float64)

    @property
    def planes(self) -> np.ndarray:
        return np.array([b.plane for b in self.beads], dtype=int)

    @property
    def has_far_layer(self) -> bool:
        return bool(np.any(self.planes == 1))

    def to_dict(self) -> dict:
        out = {"name": self.name}
        if self.description:
            out["description"] = self.description
        out.update(self.extra)
        if self.grid is not None:
            out["grid"] = self.grid.to_dict()
            return out
        out["beads"] = [
            {
                "id": b.id,
                "xyz_mm": [float(v) for v in b.xyz_mm],
                "diameter_mm": float(b.diameter_mm),
                "plane": int(b.plane),
            }
            for b in self.beads
        ]
        return out


def _num(value, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise PhantomError(f"{what} must be a number, got {value!r}")
    if not np.isfinite(value):
        raise PhantomError(f"{what} must be finite, got {value!r}")
    return float(value)


def phantom_from_dict(data, *, min_beads: int = MIN_BEADS) -> Phantom:
    """Validate a parsed ``phantom.json`` and build a :class:`Phantom`.

    Raises :class:`PhantomError` with a one-line message naming the first problem.
    """
    if not isinstance(data, dict):
        raise PhantomError("phantom definition must be a JSON object")
    name = data.get("name")
    if not isinstance(name, str) or not name.strip():
        raise PhantomError("phantom needs a non-empty string field 'name'")
    if "grid" in data:
        return _grid_phantom_from_dict(data, name.strip())
    beads_raw = data.get("beads")
    if not isinstance(beads_raw, list):
        raise PhantomError(f"phantom '{name}' needs a list field 'beads'")
    beads: list[Bead] = []
    seen: set[str] = set()
    for n, b in enumerate(beads_raw):
        beads.append(_bead_from_dict(n, b, seen))
    near = [b for b in beads if b.plane == 0]
    far = [b for b in beads if b.plane == 1]
    _check_bead_counts(name, beads, near, far, min_beads)
    for plane_beads in (near, far):
        _check_distinct_positions(plane_beads)
    extra = {k: v for k, v in data.items() if k not in ("name", "beads", "description")}
    desc = data.get("description", "")
    return Phantom(name.strip(), beads, desc if isinstance(desc, str) else "", extra)


def _bead_from_dict(n: int, b, seen: set[str]) -> Bead:
    """Bead #``n`` of the ``beads`` list (ids already taken in ``seen``, updated)."""
    where = f"bead #{n}"
    if not isinstance(b, dict):
        raise PhantomError(f"{where} must be a JSON object")
    for key in ("id", "xyz_mm", "diameter_mm", "plane"):
        if key not in b:
            raise PhantomError(f"{where} is missing field '{key}'")
    bid = b["id"]
    if not isinstance(bid, str) or not bid.strip():
        raise PhantomError(f"{where}: 'id' must be a non-empty string")
    where = f"bead '{bid}'"
    if bid in seen:
        raise PhantomError(f"duplicate bead id '{bid}'")
    seen.add(bid)
    xyz = b["xyz_mm"]
    if not isinstance(xyz, list) or len(xyz) != 3:
        raise PhantomError(f"{where}: 'xyz_mm' must be a list of three numbers")
    xyz_t = tuple(_num(v, f"{where} xyz_mm") for v in xyz)
    if xyz_t[2] >= 0:
        raise PhantomError(
            f"{where}: z must be negative (between source and detector), got {xyz_t[2]}"
        )
    diam = _num(b["diameter_mm"], f"{where} diameter_mm")
    if not 0.2 <= diam <= 20:
        raise PhantomError(f"{where}: diameter_mm must be between 0.2 and 20 mm, got {diam}")
    plane = b["plane"]
    if isinstance(plane, bool) or plane not in (0, 1):
        raise PhantomError(f"{where}: 'plane' must be 0 or 1, got {plane!r}")
    return Bead(bid, xyz_t, diam, int(plane))


def _check_bead_counts(
    name: str, beads: list[Bead], near: list[Bead], far: list[Bead], min_beads: int
) -> None:
    """Enough beads in all and per plane, and plane 1 at least 20 mm toward the source."""
    if len(beads) < min_beads:
        raise PhantomError(f"phantom '{name}' has {len(beads)} beads; at least {min_beads} needed")
    if len(near) < min_beads:
        raise PhantomError(
            f"phantom '{name}' has {len(near)} plane-0 beads; at least {min_beads} needed"
        )
    if far and len(far) < 6:
        raise PhantomError(
            f"phantom '{name}' has {len(far)} plane-1 beads; at least 6 needed (or none)"
        )
    if far:
        zn = np.median([b.xyz_mm[2] for b in near])
        zf = np.median([b.xyz_mm[2] for b in far])
        if zf >= zn - 20:
            raise PhantomError(
                f"phantom '{name}': plane 1 (z={zf:.1f}) must be at least 20 mm further "
                f"toward the source than plane 0 (z={zn:.1f})"
            )


def _check_distinct_positions(plane_beads: list[Bead]) -> None:
    """No two beads of one plane closer than 0.5 mm in x, y."""
    if len(plane_beads) < 2:
        return
    p = np.array([b.xyz_mm[:2] for b in plane_beads])
    d = np.linalg.norm(p[:, None] - p[None], axis=2)
    np.fill_diagonal(d, np.inf)
    i, j = np.unravel_index(np.argmin(d), d.shape)
    if d[i, j] < 0.5:
        raise PhantomError(
            f"beads '{plane_beads[i].id}' and '{plane_beads[j].id}' are at the same position"
        )


def _grid_phantom_from_dict(data: dict, name: str) -> Phantom:
    """The ``grid`` form of CONVENTIONS.md (a dewarping plate, distortion only)."""
    if "beads" in data:
        raise PhantomError(
            f"phantom '{name}' has both 'grid' and 'beads': a grid plate is described by "
            "'grid' alone"
        )
    g = data["grid"]
    if not isinstance(g, dict):
        raise PhantomError(f"phantom '{name}': 'grid' must be a JSON object")
    for key in ("lattice", "pitch_mm", "marker", "diameter_mm"):
        if key not in g:
            raise PhantomError(f"phantom '{name}': grid is missing field '{key}'")
    unknown = sorted(set(g) - {"lattice", "pitch_mm", "marker", "diameter_mm"})
    if unknown:
        raise PhantomError(
            f"phantom '{name}': unknown grid field(s) {', '.join(repr(k) for k in unknown)} "
            "(expected lattice, pitch_mm, marker, diameter_mm)"
        )
    lattice = g["lattice"]
    if lattice not in GRID_LATTICES:
        raise PhantomError(
            f'phantom \'{name}\': grid lattice must be "square" or "hex", got {lattice!r}'
        )
    marker = g["marker"]
    if marker not in GRID_MARKERS:
        raise PhantomError(
            f'phantom \'{name}\': grid marker must be "bead" or "hole", got {marker!r}'
        )
    pitch = _num(g["pitch_mm"], f"phantom '{name}': grid pitch_mm")
    if not 0.5 <= pitch <= 50:
        raise PhantomError(
            f"phantom '{name}': grid pitch_mm must be between 0.5 and 50 mm, got {pitch}"
        )
    diam = _num(g["diameter_mm"], f"phantom '{name}': grid diameter_mm")
    if not 0.1 <= diam <= 20:
        raise PhantomError(
            f"phantom '{name}': grid diameter_mm must be between 0.1 and 20 mm, got {diam}"
        )
    if diam > 0.7 * pitch:
        raise PhantomError(
            f"phantom '{name}': grid markers of {diam} mm on a {pitch} mm pitch would touch; "
            "the diameter must be at most 0.7 x the pitch"
        )
    extra = {k: v for k, v in data.items() if k not in ("name", "grid", "description")}
    desc = data.get("description", "")
    return Phantom(
        name,
        [],
        desc if isinstance(desc, str) else "",
        extra,
        grid=GridPlate(str(lattice), pitch, str(marker), diam),
    )


def load_phantom(path) -> Phantom:
    """Read and validate a ``phantom.json`` file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PhantomError(f"phantom file not found: {path}") from None
    except OSError as exc:
        raise PhantomError(f"cannot read phantom file {path}: {exc.strerror}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PhantomError(
            f"phantom file {path.name} is not valid JSON: {exc.msg} (line {exc.lineno})"
        ) from None
    return phantom_from_dict(data)


def builtin_phantom(name: str) -> Phantom:
    """Load a shipped phantom by file stem (``clipon_two_layer`` or ``dot_grid_plate``)."""
    return load_phantom(PHANTOM_DIR / f"{name}.json")
