"""Lattice indexing of a dewarping-plate frame and the ideal lattice it is fitted to.

Markers (:mod:`.plate_markers`) get integer lattice coordinates by region growing from
the field centre (:mod:`.lattice`) with a consistency check of every index; the ideal
lattice has the plate's nominal pitch, its rotation and position fitted to the central
markers where distortion is smallest. Pixels of the stored image, mm on the plate.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .lattice import LatticeError, check_indexing, index_lattice, lattice_fit_rms
from .plate_markers import MarkerDetections, PlateError, detect_markers

MIN_MARKERS = 40
CENTRAL_FRACTION = 0.8


@dataclass
class PlateLattice:
    detections: MarkerDetections
    xy: np.ndarray  # (M, 2) indexed marker pixels
    ij: np.ndarray  # (M, 2) lattice coordinates
    pitch_px_observed: float  # near the field centre, isotropic pixels
    theta: float


def find_plate_lattice(
    image: np.ndarray,
    grid,
    spacing: tuple[float, float],
    *,
    markers_bright: bool | None = None,
) -> PlateLattice:
    """Detect and index the markers of one plate frame (pixels of the stored image)."""
    sx, sy = float(spacing[0]), float(spacing[1])
    s_mean = 0.5 * (sx + sy)
    pitch_px = grid.pitch_mm / s_mean
    d_px = grid.diameter_mm / s_mean
    if markers_bright is None:
        markers_bright = grid.marker == "hole"
    det = detect_markers(image, pitch_px, d_px, markers_bright)
    if len(det.xy) < MIN_MARKERS:
        raise PlateError(
            f"only {len(det.xy)} plate markers found; at least {MIN_MARKERS} are needed "
            "(wrong plate, wrong pixel spacing, or markers not visible)"
        )
    # isotropic coordinates (mm / mean spacing) so the lattice keeps its shape
    iso = det.xy * np.array([sx, sy]) / s_mean
    c = np.array(det.field.centre) * np.array([sx, sy]) / s_mean
    try:
        lat = index_lattice(iso, c, pitch_px, grid.lattice)
    except LatticeError as exc:
        raise PlateError(str(exc)) from None
    ratio = lat.pitch / pitch_px
    if not 0.8 <= ratio <= 1.25:
        raise PlateError(
            f"marker spacing in the image is {lat.pitch * s_mean:.2f} mm but the plate has "
            f"{grid.pitch_mm:.2f} mm: wrong plate or wrong pixel spacing"
        )
    xy = det.xy[lat.point_index]
    ij = lat.ij
    good = check_indexing(iso[lat.point_index], ij, pitch=lat.pitch)
    xy, ij = xy[good], ij[good]
    if len(xy) < MIN_MARKERS:
        raise PlateError(
            f"only {len(xy)} plate markers could be placed on the lattice; at least "
            f"{MIN_MARKERS} are needed"
        )
    return PlateLattice(det, xy, ij, lat.pitch, lat.theta)


def fit_ideal_lattice(
    xy_px: np.ndarray,
    ij: np.ndarray,
    basis_mm: np.ndarray,
    spacing,
    size: tuple[int, int],
    centre_px,
    radius_px: float,
) -> tuple[np.ndarray, float, np.ndarray]:
    """Rotation and position of the ideal lattice (nominal pitch) fitted to the central
    markers. Returns (ideal pixels of every ``ij``, angle degrees, origin pixel)."""
    w, h = size
    sx, sy = spacing
    c_img = np.array([(w - 1) / 2, (h - 1) / 2])
    mm = (xy_px - c_img) * np.array([sx, sy])
    lat_mm = ij @ basis_mm.T
    r = np.linalg.norm(xy_px - np.asarray(centre_px), axis=1)
    r_lim = np.sort(r)[min(len(r) - 1, max(30, len(r) // 8))]
    sel = r <= r_lim
    pa, pb = lat_mm[sel], mm[sel]
    ma, mb = pa.mean(axis=0), pb.mean(axis=0)
    za = (pa - ma)[:, 0] + 1j * (pa - ma)[:, 1]
    zb = (pb - mb)[:, 0] + 1j * (pb - mb)[:, 1]
    rot = np.vdot(za, zb)
    rot = rot / abs(rot)
    zl = (lat_mm - ma)[:, 0] + 1j * (lat_mm - ma)[:, 1]
    zi = rot * zl + (mb[0] + 1j * mb[1])
    ideal_mm = np.column_stack([zi.real, zi.imag])
    ideal_px = ideal_mm / np.array([sx, sy]) + c_img
    o = rot * (-(ma[0] + 1j * ma[1])) + (mb[0] + 1j * mb[1])
    origin_px = np.array([o.real, o.imag]) / np.array([sx, sy]) + c_img
    return ideal_px, float(np.degrees(np.angle(rot))), origin_px


def measure_lattice_deviation(
    image: np.ndarray,
    grid,
    spacing: tuple[float, float],
    *,
    central_fraction: float = CENTRAL_FRACTION,
    markers_bright: bool | None = None,
    field_centre=None,
    field_radius: float | None = None,
    region=None,
) -> dict:
    """How far a frame's markers are from a perfect lattice (pixels): detect and index the
    markers, fit the best lattice (rotation, position and pitch free) to those within
    ``central_fraction`` of the field radius (the field found in ``image`` unless
    ``field_centre``/``field_radius`` are given; ``region``, a function of (N, 2) pixels
    returning a boolean mask, overrides both), and report the RMS and max distance."""
    pl = find_plate_lattice(image, grid, spacing, markers_bright=markers_bright)
    if region is not None:
        sel = np.asarray(region(pl.xy), bool)
    else:
        c = np.asarray(field_centre if field_centre is not None else pl.detections.field.centre)
        r = field_radius if field_radius is not None else pl.detections.field.radius
        if not np.isfinite(r):
            r = 0.5 * min(image.shape)
        sel = np.linalg.norm(pl.xy - c, axis=1) <= central_fraction * r
    sx, sy = spacing
    basis_px = grid.basis_mm / np.array([[sx], [sy]])
    rms, res = lattice_fit_rms(pl.ij[sel], pl.xy[sel], basis_px)
    rn = np.linalg.norm(res, axis=1)
    return {
        "rms_px": rms,
        "max_px": float(rn.max()),
        "p95_px": float(np.percentile(rn, 95)),
        "n_markers": int(sel.sum()),
        "n_indexed": int(len(pl.xy)),
    }
