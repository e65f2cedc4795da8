"""One-image C-arm calibration: beads -> distortion polynomial, effective source, ``K``.

Inputs are a phantom image (any polarity), a :class:`Phantom` and the detector pixel
spacing ``(sx, sy)`` in mm. Output is a :class:`CalibrationResult` whose ``profile`` is the
``profile.json`` object of CONVENTIONS.md. Pixel coordinates of the profile (polynomials,
``K``) refer to the stored image after the profile's ``flip_horizontal`` flag is applied
(a device storing mirrored images); ``phantom_rotation_deg`` is the mounting rotation of
the clip-on phantom about the detector z axis (multiples of 90 degrees), which rotates
the phantom's bead positions in the detector frame.

This module chooses the path (grid plate, our square-grid design, general identification)
and the polarity; the fit is :mod:`.bead_fit`, the profile :mod:`.bead_result`, the
refusal checks :mod:`.bead_checks`, the types :mod:`.result`.
"""

from __future__ import annotations

import numpy as np

from .bead_checks import GridIdentificationError
from .bead_fit import fit_named_beads
from .bead_result import bead_result
from .correspond import CorrespondenceError, build_lattice, classify_large, match_code
from .detect import DetectionError, Detections, detect_beads, guess_polarity
from .general_identification import calibrate_general
from .phantom import Phantom, PhantomError
from .phantom_grid import analyse_grid
from .plate import calibrate_plate
from .result import CalibrationError, CalibrationResult

__all__ = ["CalibrationError", "CalibrationResult", "calibrate"]


def calibrate(
    image: np.ndarray,
    phantom: Phantom,
    pixel_spacing: tuple[float, float],
    *,
    beads_bright: bool | None = None,
    nominal_sid_mm: float = 1000.0,
    holdout_ids: list[str] | tuple[str, ...] = (),
    position_noise_px: float = 0.0,
    rng: np.random.Generator | int | None = None,
    metadata: dict | None = None,
    sdd_mm: float | None = None,
    sdd_origin: str | None = None,
    photometric: str | None = None,
) -> CalibrationResult:
    """Calibrate from one phantom image; raises :class:`CalibrationError` with the reason.

    Two-layer phantoms: our square-grid design is named by the lattice and its code of
    large beads (:mod:`.correspond`); any other layout, or when that fails, by the general
    identification of :mod:`.identify` (square, hexagonal or irregular near layer; code by
    bead sizes, missing beads or the outline; ties decided by the far layer). Either way
    the far layer must then agree with one plausible source, or the image is refused;
    projections that touch a bead of the other layer (or crowd another blob) are left out
    of the fits when enough remain, and far beads outside the named near beads' hull
    (where the polynomial would extrapolate) are not used for the source.

    A grid plate (``phantom.grid``) gives the distortion alone (:mod:`.plate`): the source
    is nominal, ``(0, 0, -sdd_mm)`` (``sdd_origin`` says where the distance came from; none
    given: 1000 mm, and the profile says so); ``photometric`` "MONOCHROME1" marks an image
    stored inverted. Both are unused for bead phantoms.

    ``holdout_ids`` are plane-0 beads kept out of the distortion fit (for validation);
    ``position_noise_px`` adds Gaussian noise to detected centroids (benchmarks only).
    ``metadata`` may carry ``device``, ``primary_angle_deg``, ``secondary_angle_deg``,
    ``calibrated_by`` and ``image`` for the profile.
    """
    img = np.asarray(image)
    if img.ndim != 2:
        raise CalibrationError(f"image must be a 2-D grey image, got shape {img.shape}")
    h, w = img.shape
    try:
        sx, sy = float(pixel_spacing[0]), float(pixel_spacing[1])
    except (TypeError, ValueError, IndexError):
        raise CalibrationError("pixel spacing must be two numbers (sx, sy) in mm") from None
    if not (np.isfinite(sx) and np.isfinite(sy) and 0.01 <= sx <= 5 and 0.01 <= sy <= 5):
        raise CalibrationError(f"pixel spacing must be between 0.01 and 5 mm, got {sx}, {sy}")
    if phantom.grid is not None:
        return _calibrate_plate(
            img, phantom, (sx, sy), sdd_mm, sdd_origin, photometric, beads_bright, metadata
        )
    try:
        grid = analyse_grid(phantom)
    except PhantomError:
        grid = None  # not our square-grid design: general identification only
    if beads_bright is None:
        try:
            first = guess_polarity(img)
        except DetectionError as exc:
            raise CalibrationError(str(exc)) from None
        polarities = [first, not first]
    else:
        polarities = [bool(beads_bright)]
    args = (list(holdout_ids), position_noise_px, rng, metadata or {})
    errors: list[str] = []
    if grid is not None:
        mean_sp = 0.5 * (sx + sy)
        all_d = phantom.diameters
        r_range = (
            0.85 * grid.small_diameter / 2 / max(sx, sy),
            1.35 * all_d.max() / 2 / min(sx, sy),
        )
        z_near = float(np.median(phantom.xyz[grid.indices, 2]))
        m_near = nominal_sid_mm / (nominal_sid_mm + z_near)
        pitch_guess = grid.pitch_mm * m_near / mean_sp
        identification_failed = False
        for pol in polarities:
            try:
                det = detect_beads(img, r_range, beads_bright=pol)
                return _calibrate_detections(
                    det, phantom, grid, (w, h), (sx, sy), pitch_guess, nominal_sid_mm, *args
                )
            except (DetectionError, CorrespondenceError, CalibrationError) as exc:
                errors.append(str(exc))
                identification_failed |= isinstance(
                    exc, (CorrespondenceError, GridIdentificationError)
                )
                if isinstance(exc, DetectionError) and "blank" in str(exc):
                    raise CalibrationError(errors[0]) from None
        if not identification_failed:
            raise CalibrationError(errors[0])
    # general identification from phantom.json alone (any layout and code)
    near = phantom.plane_mask(0)
    r_range = (
        0.85 * float(phantom.diameters[near].min()) / 2 / max(sx, sy),
        1.35 * float(phantom.diameters.max()) / 2 / min(sx, sy),
    )
    for pol in polarities:
        try:
            det = detect_beads(img, r_range, beads_bright=pol)
            return calibrate_general(det, phantom, (w, h), (sx, sy), nominal_sid_mm, *args)
        except (DetectionError, CalibrationError) as exc:
            errors.append(str(exc))
            if isinstance(exc, DetectionError) and "blank" in str(exc):
                break
    raise CalibrationError(errors[0])


def _calibrate_plate(img, phantom, spacing, sdd_mm, sdd_origin, photometric, bright, metadata):
    """Grid plate: expected polarity first (holes bright, beads dark in raw intensity;
    MONOCHROME1 stored inverted), then the other one if no lattice was found."""
    work = np.asarray(img, dtype=np.float64)
    if photometric and str(photometric).upper() == "MONOCHROME1":
        work = float(np.max(work)) - work
    first = (phantom.grid.marker == "hole") if bright is None else bool(bright)
    errors = []
    for pol in (first, not first) if bright is None else (first,):
        try:
            return calibrate_plate(
                work, phantom, spacing, sdd_mm=sdd_mm, sdd_origin=sdd_origin,
                markers_bright=pol, metadata=metadata,
            )  # fmt: skip
        except CalibrationError as exc:
            errors.append(str(exc))
            if "blank" in str(exc) or "must be" in str(exc):
                break
    raise CalibrationError(errors[0])


def _calibrate_detections(
    det: Detections,
    phantom: Phantom,
    grid,
    size: tuple[int, int],
    spacing: tuple[float, float],
    pitch_guess: float,
    nominal_sid_mm: float,
    holdout_ids: list[str],
    position_noise_px: float,
    rng,
    metadata: dict,
) -> CalibrationResult:
    """Near layer named as our square-grid design (:mod:`.correspond`): the lattice, then
    its code of large beads; refused early when the blobs cannot be that phantom."""
    w, h = size
    sx, sy = spacing
    if len(det) < 9:
        raise CalibrationError(
            f"only {len(det)} bead-like blobs detected: not an image of phantom '{phantom.name}'"
        )
    xy_stored = det.xy.copy()
    if position_noise_px > 0:
        gen = np.random.default_rng(rng)
        xy_stored = xy_stored + gen.normal(scale=position_noise_px, size=xy_stored.shape)
    centre = (
        np.array(det.fov_centre)
        if np.isfinite(det.fov_radius)
        else np.array([(w - 1) / 2, (h - 1) / 2])
    )
    if np.isfinite(det.fov_radius):
        # beads of plane 0 expected inside the field (nominal geometry)
        nominal = (
            phantom.xyz[grid.indices, :2]
            / np.array([sx, sy])
            * (pitch_guess * 0.5 * (sx + sy) / grid.pitch_mm)
        )
        n_expected = int(np.sum(np.linalg.norm(nominal, axis=1) < det.fov_radius * 0.95))
        if len(det) < 0.3 * n_expected:
            raise CalibrationError(
                f"only {len(det)} of {n_expected} beads found: too many hidden, or the wrong phantom"
            )
    lat = build_lattice(xy_stored, centre, pitch_guess)
    pitch_mm_seen = lat.pitch_px * 0.5 * (sx + sy)
    ratio = pitch_mm_seen / grid.pitch_mm
    if not 0.9 <= ratio <= 1.15:
        raise GridIdentificationError(
            f"bead grid spacing in the image is {pitch_mm_seen:.1f} mm but phantom "
            f"'{phantom.name}' has {grid.pitch_mm:.1f} mm: wrong phantom or wrong pixel spacing"
        )
    large = classify_large(det.integral[lat.blob_index], grid.large_diameter / grid.small_diameter)
    nm = match_code(lat, large, grid)
    fit = fit_named_beads(
        det, phantom, xy_stored, nm.blob_index, nm.bead_index, grid.indices, lat.pitch_px,
        size, spacing, nominal_sid_mm, holdout_ids, far_check=True,
    )  # fmt: skip
    return bead_result(fit, metadata)
