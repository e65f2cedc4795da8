"""Dewarping grid plates (distortion only): the calibration driver for one plate frame.

One raw frame of a plate (``phantom.json`` with a ``grid`` object, CONVENTIONS.md) gives
the distortion polynomial alone:

1. field of view (:mod:`.plate_field`): the exposed field (round or octagonal, soft edge)
   from a smoothed copy in which the markers average out; its dark level is subtracted;
2. markers (:mod:`.plate_markers`): ``log`` of the dark-corrected image, Laplacian of
   Gaussian peaks at the marker size, background-subtracted weighted centroids; markers
   cut by the field edge are dropped;
3. lattice (:mod:`.plate_lattice`): pitch and direction from the central markers, integer
   lattice coordinates by region growing outwards (:mod:`.lattice`), a consistency check
   of every index;
4. the ideal lattice (pitch ``pitch_mm`` / pixel spacing, its rotation and position fitted
   to the central markers where distortion is smallest) and the polynomial from detected to
   ideal pixels, degree 3..5 by leave-one-out (:mod:`.polynomial`);
5. the profile (here): ``"source": "nominal"``, ``source_mm = (0, 0, -SDD)``, ``K`` with
   the principal point at the image centre.
"""

from __future__ import annotations

import datetime as _dt

import numpy as np

from geometry.camera import Camera
from geometry.distortion import fit_inverse, fit_poly_select_order

from .detect import Detections
from .phantom import Phantom
from .plate_lattice import find_plate_lattice, fit_ideal_lattice
from .plate_markers import PlateError
from .result import PROFILE_FORMAT, QUADRANTS, CalibrationError, CalibrationResult

DEFAULT_SDD_MM = 1000.0


def calibrate_plate(
    image: np.ndarray,
    phantom: Phantom,
    pixel_spacing: tuple[float, float],
    *,
    sdd_mm: float | None = None,
    sdd_origin: str | None = None,
    markers_bright: bool | None = None,
    metadata: dict | None = None,
) -> CalibrationResult:
    """Distortion-only calibration from one plate frame -> ``CalibrationResult``.

    ``sdd_mm`` sets the nominal source ``(0, 0, -SDD)``; None uses the default of 1000 mm
    and says so in the profile (``source_to_detector_origin``).
    """
    grid = phantom.grid
    img = np.asarray(image)
    if img.ndim != 2:
        raise CalibrationError(f"image must be a 2-D grey image, got shape {img.shape}")
    h, w = img.shape
    sx, sy = float(pixel_spacing[0]), float(pixel_spacing[1])
    if sdd_mm is None:
        sdd, origin = DEFAULT_SDD_MM, "default (no DistanceSourceToDetector and no --sdd)"
    else:
        sdd = float(sdd_mm)
        origin = sdd_origin or "given"
        if not (np.isfinite(sdd) and 100 <= sdd <= 5000):
            raise CalibrationError(f"source-to-detector distance must be 100..5000 mm, got {sdd}")
    try:
        pl = find_plate_lattice(img, grid, (sx, sy), markers_bright=markers_bright)
    except PlateError as exc:
        raise CalibrationError(str(exc)) from None
    det = pl.detections
    fc = det.field.centre
    fr = det.field.radius if np.isfinite(det.field.radius) else 0.5 * min(w, h)
    ideal, angle_deg, origin_px = fit_ideal_lattice(
        pl.xy, pl.ij, grid.basis_mm, (sx, sy), (w, h), fc, fr
    )
    centre_px = ((w - 1) / 2, (h - 1) / 2)
    scale_px = ((w - 1) / 2, (h - 1) / 2)
    try:
        fit = fit_poly_select_order(pl.xy, ideal, centre_px, scale_px, orders=(3, 4, 5))
    except ValueError as exc:
        raise CalibrationError(f"distortion fit failed: {exc}") from None
    forward = fit.poly
    # re-centre the ideal lattice on the fit (outliers removed), then refit once
    und = forward.apply(pl.xy)
    used = fit.weights > 0.5
    _check_plate_coverage(pl.xy[used], fc, fr)
    vv, uu = np.mgrid[0:h:8, 0:w:8]
    m = det.field.mask[vv, uu]
    region = np.column_stack([uu[m], vv[m]]).astype(np.float64)
    inverse = fit_inverse(forward, region)
    res_px = und - ideal
    rn_px = np.linalg.norm(res_px, axis=1)
    rn_mm = np.linalg.norm(res_px * np.array([sx, sy]), axis=1)
    ids = [f"L{i:+04d}{j:+04d}" for i, j in pl.ij]
    source = np.array([0.0, 0.0, -sdd])
    K = Camera.from_source(source, w, h, (sx, sy)).K
    beads = [
        {
            "id": ids[k],
            "plane": 0,
            "detected_px": [float(pl.xy[k, 0]), float(pl.xy[k, 1])],
            "dewarped_px": [float(und[k, 0]), float(und[k, 1])],
            "expected_px": [float(ideal[k, 0]), float(ideal[k, 1])],
            "residual_px": float(rn_px[k]),
            "used": bool(used[k]),
            "held_out": False,
        }
        for k in range(len(ids))
    ]

    def summary(values):
        return {
            "rms": float(np.sqrt(np.mean(values[used] ** 2))),
            "max": float(np.max(values[used])),
            "per_bead": {n: float(v) for n, v in zip(ids, values, strict=True)},
        }

    md = metadata or {}
    profile = {
        "format": PROFILE_FORMAT,
        "version": 1,
        "device": md.get("device"),
        "phantom": phantom.name,
        "phantom_kind": "grid_plate",
        "image": md.get("image"),
        "primary_angle_deg": md.get("primary_angle_deg"),
        "secondary_angle_deg": md.get("secondary_angle_deg"),
        "width": int(w),
        "height": int(h),
        "pixel_spacing_mm": [sx, sy],
        "flip_horizontal": False,
        "phantom_rotation_deg": 0,
        "forward": forward.to_dict(),
        "inverse": inverse.to_dict(),
        "source": "nominal",
        "source_mm": [float(v) for v in source],
        "source_to_detector_mm": sdd,
        "source_to_detector_origin": origin,
        "source_uncertainty_mm": None,
        "K": K.tolist(),
        "lattice": {
            "kind": grid.lattice,
            "marker": grid.marker,
            "pitch_mm": grid.pitch_mm,
            "pitch_px_ideal": [grid.pitch_mm / sx, grid.pitch_mm / sy],
            "pitch_mm_observed_centre": float(pl.pitch_px_observed * 0.5 * (sx + sy)),
            "angle_deg": angle_deg,
            "origin_px": [float(origin_px[0]), float(origin_px[1])],
            "markers_indexed": int(len(ids)),
            "markers_dropped_at_edge": int(det.n_dropped_edge),
            "field_centre_px": [float(fc[0]), float(fc[1])],
            "field_radius_px": float(det.field.radius) if np.isfinite(det.field.radius) else None,
        },
        "residuals_px": summary(rn_px),
        "residuals_mm": summary(rn_mm),
        "loo_rms_px": float(fit.loo_rms),
        "source_residuals_px": {},
        "beads_used": int(used.sum()),
        "beads_far_used": 0,
        "beads_detected": int(len(det.xy)),
        "beads_hidden": [],
        "beads": beads,
        "beads_bright": det.markers_bright,
        "calibrated_by": md.get("calibrated_by"),
        "calibrated_at": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }
    detections = Detections(
        det.xy,
        det.radius,
        det.integral,
        det.contrast,
        det.circularity,
        fc,
        float(det.field.radius),
        det.inner,
        det.markers_bright,
        det.noise,
    )
    return CalibrationResult(
        profile=profile,
        forward=forward,
        inverse=inverse,
        source=None,
        K=K,
        flip=False,
        rotation_deg=0,
        detections=detections,
        near_ids=ids,
        near_detected_px=pl.xy,
        near_target_px=ideal,
        near_used=used,
    )


def _check_plate_coverage(xy: np.ndarray, centre, radius: float) -> None:
    """Refuse when a quadrant of the field holds almost no usable markers."""
    c = np.asarray(centre)
    inner = np.linalg.norm(xy - c, axis=1) < 0.9 * radius
    q = (xy[inner] > c).astype(int)
    counts = {key: int(np.sum(np.all(q == key, axis=1))) for key in QUADRANTS}
    total = sum(counts.values())
    for key, name in QUADRANTS.items():
        if counts[key] < max(5, 0.05 * total):
            raise CalibrationError(
                f"only {counts[key]} plate markers in the {name} quadrant of the field: "
                "too few to fit the distortion"
            )
