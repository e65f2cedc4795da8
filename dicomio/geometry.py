"""Slice-stack geometry: sort slices, check spacing, detect gantry tilt, build the LPS affine.

No Django imports. Frames follow docs/CONVENTIONS.md: the affine maps voxel index
(i, j, k, 1) = (column, row, slice, 1) to DICOM LPS millimetres.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from dicomio.errors import InputRefused

DUPLICATE_TOL_MM = 0.01
IN_PLANE_TOL_MM = 0.05


@dataclass
class StackGeometry:
    """How to assemble sorted slices into a regular grid.

    ``order``: indices of the input slices in increasing position along the slice normal.
    ``affine``: 4x4 voxel (i, j, k, 1) -> LPS mm of the *output* grid.
    ``shifts_px``: (N, 2) per sorted slice, (row, col) shift in pixels to apply with
    ``scipy.ndimage.shift`` to put the slice on the output grid (all zeros without tilt).
    ``tilt_deg``: angle between the stacking direction and the slice normal (0 without tilt).
    """

    order: np.ndarray
    affine: np.ndarray
    slice_spacing_mm: float
    shifts_px: np.ndarray
    tilt_deg: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def needs_resampling(self) -> bool:
        return bool(np.any(np.abs(self.shifts_px) > 1e-6))


def orientation_axes(orientation: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unit row direction (along a row, +i), column direction (+j) and slice normal (+k)."""
    iop = np.asarray(orientation, dtype=np.float64).reshape(6)
    row, col = iop[:3], iop[3:]
    nr, nc = np.linalg.norm(row), np.linalg.norm(col)
    if not (0.9 < nr < 1.1 and 0.9 < nc < 1.1):
        raise InputRefused(f"ImageOrientationPatient {list(iop)} does not hold unit vectors")
    row, col = row / nr, col / nc
    if abs(float(row @ col)) > 1e-3:
        raise InputRefused("ImageOrientationPatient rows are not perpendicular")
    normal = np.cross(row, col)
    return row, col, normal / np.linalg.norm(normal)


def plan_stack(
    positions: np.ndarray,
    orientation: np.ndarray,
    pixel_spacing: tuple[float, float],
    *,
    instance_numbers: list[int] | None = None,
    spacing_rel_tol: float = 0.01,
    spacing_abs_tol_mm: float = 0.02,
) -> StackGeometry:
    """Plan the regular grid of a slice stack or raise :class:`InputRefused` naming the problem.

    positions: (N, 3) ImagePositionPatient (LPS mm, centre of the first pixel) per slice.
    orientation: ImageOrientationPatient (6 direction cosines, shared by all slices).
    pixel_spacing: DICOM PixelSpacing ``(row spacing, column spacing)`` = ``(sy, sx)`` mm.

    Slices are sorted by their position along the slice normal (cross product of the two
    orientation rows). Duplicate positions and non-uniform spacing (missing slices, uneven
    gaps) are refused, naming slice numbers in sorted order (1-based). Gantry tilt (positions
    drifting in-plane as the stack advances, at a constant angle) is resampled: every slice is
    shifted in-plane onto one orthogonal grid whose in-plane origin is the mean of the
    slices' in-plane offsets.
    """
    pos = np.asarray(positions, dtype=np.float64).reshape(-1, 3)
    n = len(pos)
    sy, sx = float(pixel_spacing[0]), float(pixel_spacing[1])
    if not (sx > 0 and sy > 0 and math.isfinite(sx) and math.isfinite(sy)):
        raise InputRefused(f"PixelSpacing {[sy, sx]} is not positive")
    row, col, normal = orientation_axes(orientation)
    if n < 2:
        raise InputRefused("only 1 slice: a CT volume needs at least 2 slices")
    s = pos @ normal
    tie = np.asarray(instance_numbers if instance_numbers is not None else np.arange(n), float)
    order = np.lexsort((tie, s))
    s_sorted = s[order]
    pos_sorted = pos[order]
    gaps = np.diff(s_sorted)
    _refuse_duplicates(s_sorted, gaps)
    drift = _Drift.of(pos_sorted, s_sorted, row, col, normal)
    _refuse_uneven_spacing(gaps, drift, spacing_rel_tol, spacing_abs_tol_mm)
    spacing = float((s_sorted[-1] - s_sorted[0]) / (n - 1))

    notes: list[str] = []
    offset = np.zeros(3)
    shifts = np.zeros((n, 2))
    if drift.tilted:
        offset, shifts = _tilt_shifts(s_sorted, drift, row, col, sx, sy)
        notes.append(f"resampled in-plane to correct a gantry tilt of {drift.tilt_deg:.1f} degrees")

    affine = np.eye(4)
    affine[:3, 0] = row * sx
    affine[:3, 1] = col * sy
    affine[:3, 2] = normal * spacing
    affine[:3, 3] = pos_sorted[0] + offset
    return StackGeometry(
        order=order,
        affine=affine,
        slice_spacing_mm=spacing,
        shifts_px=shifts,
        tilt_deg=drift.tilt_deg if drift.tilted else 0.0,
        notes=notes,
    )


def _refuse_duplicates(s_sorted: np.ndarray, gaps: np.ndarray) -> None:
    """Refuse two or more slices at one position along the normal."""
    dup = np.flatnonzero(gaps < DUPLICATE_TOL_MM)
    if dup.size:
        a = int(dup[0])
        n_at = int(np.sum(np.abs(s_sorted - s_sorted[a]) < DUPLICATE_TOL_MM))
        raise InputRefused(
            f"duplicate slice positions: {n_at} slices lie at {s_sorted[a]:.2f} mm along the slice "
            f"normal (slices {a + 1} and {a + 2} in sorted order); this is not a single volume"
        )


@dataclass
class _Drift:
    """In-plane drift of the sorted slices' origins relative to the first one (mm along
    +i and +j), the tilt angle it makes with the stack, and whether it is a tilt at all."""

    row_mm: np.ndarray
    col_mm: np.ndarray
    tilt_deg: float
    tilted: bool

    @classmethod
    def of(cls, pos_sorted: np.ndarray, s_sorted: np.ndarray, row: np.ndarray,
           col: np.ndarray, normal: np.ndarray) -> _Drift:
        rel = pos_sorted - pos_sorted[0]
        along = (s_sorted - s_sorted[0])[:, None] * normal[None, :]
        drift = rel - along
        drift_row = drift @ row  # mm along +i
        drift_col = drift @ col  # mm along +j
        total_drift = np.hypot(drift_row[-1], drift_col[-1])
        extent = s_sorted[-1] - s_sorted[0]
        tilt_deg = math.degrees(math.atan2(total_drift, extent)) if extent > 0 else 0.0
        tilted = bool(np.max(np.hypot(drift_row, drift_col)) > IN_PLANE_TOL_MM)
        return cls(drift_row, drift_col, tilt_deg, tilted)


def _refuse_uneven_spacing(gaps: np.ndarray, drift: _Drift, rel_tol: float,
                           abs_tol_mm: float) -> None:
    """Refuse gaps off the median gap by more than the tolerance, naming the worst pair
    (and hinting at missing slices or a gantry tilt)."""
    median_gap = float(np.median(gaps))
    tol = max(abs_tol_mm, rel_tol * median_gap)
    deviation = np.abs(gaps - median_gap)
    if float(deviation.max()) <= tol:
        return
    w = int(np.argmax(deviation))
    hint = ""
    ratio = gaps[w] / median_gap
    if abs(ratio - round(ratio)) < 0.1 and round(ratio) >= 2:
        hint = f"; {int(round(ratio)) - 1} slice(s) seem to be missing there"
    if drift.tilted:
        hint += f"; the series also has a gantry tilt of {drift.tilt_deg:.1f} degrees"
    raise InputRefused(
        f"slice spacing varies from {gaps.min():.2f} to {gaps.max():.2f} mm between slices "
        f"{w + 1} and {w + 2} ({gaps[w]:.2f} mm apart, most are {median_gap:.2f} mm){hint}"
    )


def _tilt_shifts(s_sorted: np.ndarray, drift: _Drift, row: np.ndarray, col: np.ndarray,
                 sx: float, sy: float) -> tuple[np.ndarray, np.ndarray]:
    """(LPS offset of the output grid's origin, (N, 2) per-slice shifts in pixels) that put a
    tilted stack on one orthogonal grid; refuses drift that is not a constant tilt."""
    # A constant tilt makes the drift linear in the slice position: check it.
    t = s_sorted - s_sorted[0]
    for comp in (drift.row_mm, drift.col_mm):
        slope = float(comp[-1] / t[-1])
        resid = np.abs(comp - slope * t)
        if float(resid.max()) > max(IN_PLANE_TOL_MM, 0.01 * min(sx, sy)) * 10:
            raise InputRefused(
                "slice positions drift sideways irregularly from slice to slice "
                "(neither a straight stack nor a constant gantry tilt)"
            )
    ref_row, ref_col = float(drift.row_mm.mean()), float(drift.col_mm.mean())
    offset = ref_row * row + ref_col * col
    # Output voxel (i, j) of slice k sits at in-plane mm (i*sx + ref_row, j*sy + ref_col)
    # relative to the first slice's origin; on slice k's own grid that is pixel
    # (i + (ref_row - drift_row[k]) / sx, j + (ref_col - drift_col[k]) / sy).
    # ndimage.shift(out[x] = in[x - shift]) therefore needs shift = (drift - ref) / spacing.
    shifts = np.zeros((len(s_sorted), 2))
    shifts[:, 0] = (drift.col_mm - ref_col) / sy
    shifts[:, 1] = (drift.row_mm - ref_row) / sx
    return offset, shifts
