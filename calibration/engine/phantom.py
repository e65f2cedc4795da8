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
        beads.append(Bead(bid, xyz_t, diam, int(plane)))
    near = [b for b in beads if b.plane == 0]
    far = [b for b in beads if b.plane == 1]
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
    xyz = np.array([b.xyz_mm for b in beads])
    for plane_beads in (near, far):
        if len(plane_beads) < 2:
            continue
        p = np.array([b.xyz_mm[:2] for b in plane_beads])
        d = np.linalg.norm(p[:, None] - p[None], axis=2)
        np.fill_diagonal(d, np.inf)
        i, j = np.unravel_index(np.argmin(d), d.shape)
        if d[i, j] < 0.5:
            raise PhantomError(
                f"beads '{plane_beads[i].id}' and '{plane_beads[j].id}' are at the same position"
            )
    del xyz
    extra = {k: v for k, v in data.items() if k not in ("name", "beads", "description")}
    desc = data.get("description", "")
    return Phantom(name.strip(), beads, desc if isinstance(desc, str) else "", extra)


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


# --------------------------------------------------------------------------------------
# Grid analysis used by correspondence


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


# --------------------------------------------------------------------------------------
# Generators for the shipped phantoms (run once; the JSON files are committed)


def _code_pattern(ij: np.ndarray, rng: np.random.Generator, fraction: float) -> np.ndarray:
    """Random large-bead code without symmetry: reject draws that match any non-trivial
    rotation/mirror of themselves on more than 80 % of the large beads."""
    keys = {tuple(v): k for k, v in enumerate(ij)}
    mats = _symmetries()[1:]
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


def _symmetries() -> list[np.ndarray]:
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
