"""Refusal reasons of a bead-phantom calibration: coverage of the near layer and the far
layer's agreement with one plausible source.

Both raise :class:`~.result.CalibrationError` (or a subclass saying that the beads were
not identified reliably, so that another identification may be tried) with a one-line
reason. Pixels of the flip-corrected image; mm in the detector frame.
"""

from __future__ import annotations

import numpy as np

from .pixels import inside_hull, inside_mask, predicted_stored
from .result import QUADRANTS, CalibrationError

MIN_NEAR_BEADS = 30
MIN_FAR_BEADS = 6


class GridIdentificationError(CalibrationError):
    """The square-grid identification failed (the general one may still succeed)."""


class UnreliableIdentification(GridIdentificationError):
    """The far layer contradicts the near layer's identification."""


def check_coverage(
    poly, near_xyz: np.ndarray, source: np.ndarray, found_px: np.ndarray, det, flip: bool,
    size: tuple[int, int], spacing: tuple[float, float],
) -> None:  # fmt: skip
    """Refuse when the near layer is not covered well enough (overall or per quadrant).

    ``near_xyz`` are all plane-0 beads (mm, phantom rotation applied), ``found_px`` the
    named ones used by the fit (flip-corrected pixels)."""
    w, h = size
    sx, sy = spacing
    pred = predicted_stored(poly, near_xyz, source, w, h, sx, sy, flip)
    inside = inside_mask(det.fov_mask, pred)
    n_exp = int(inside.sum())
    found = np.asarray(found_px, dtype=np.float64).copy()
    if flip:
        found[:, 0] = w - 1 - found[:, 0]
    n_found = len(found)
    if n_found < max(MIN_NEAR_BEADS, 0.3 * n_exp):
        raise CalibrationError(
            f"only {n_found} of {n_exp} near-layer beads found: too many hidden or out of the field"
        )
    c = np.array(det.fov_centre)
    exp_q = (pred[inside] > c).astype(int)
    got_q = (found > c).astype(int)
    for key, name in QUADRANTS.items():
        n_e = int(np.sum(np.all(exp_q == key, axis=1)))
        n_g = int(np.sum(np.all(got_q == key, axis=1)))
        if n_e >= 5 and n_g < max(3, 0.15 * n_e):
            if n_g == 0:
                raise CalibrationError(f"no beads detected in the {name} quadrant")
            raise CalibrationError(
                f"only {n_g} of {n_e} beads detected in the {name} quadrant: too few to fit the distortion"
            )


def check_far_layer(
    src_est, far_xyz: np.ndarray, poly, source: np.ndarray, det, flip: bool,
    size: tuple[int, int], spacing: tuple[float, float], nominal_sid_mm: float,
    near_px: np.ndarray, pitch_px: float, touch_far: np.ndarray,
) -> None:  # fmt: skip
    """A right identification lets most far beads in the field agree with one plausible
    source; a wrong one does not (the check of a general identification).

    ``far_xyz`` are all plane-1 beads (mm, phantom rotation applied); far beads outside
    the hull of ``near_px`` (the fitted near beads) or touching a near bead
    (``touch_far``) are not expected to fit."""
    w, h = size
    sx, sy = spacing
    n_in = int(src_est.inliers.sum())
    rms_mm = float(np.sqrt(np.mean(np.sum(src_est.residuals_mm[src_est.inliers] ** 2, axis=1))))
    pred = predicted_stored(poly, far_xyz, source, w, h, sx, sy, flip)
    seen = inside_mask(det.fov_mask, pred)
    p2 = pred.copy()
    if flip:
        p2[:, 0] = w - 1 - p2[:, 0]
    seen &= inside_hull(near_px, p2, -0.5 * pitch_px)
    if np.sum(seen & ~touch_far) >= MIN_FAR_BEADS:
        seen &= ~touch_far  # excluded on purpose (biased centroids)
    expected = int(seen.sum())
    s = np.asarray(source)
    if rms_mm > max(0.15, 0.6 * max(sx, sy)) or n_in < max(MIN_FAR_BEADS, 0.3 * expected):
        raise UnreliableIdentification(
            f"the far layer does not agree with one source ({n_in} of {expected} far beads fit, "
            f"RMS {rms_mm:.2f} mm): the beads were not identified reliably"
        )
    if np.hypot(s[0], s[1]) > 0.1 * nominal_sid_mm or not 0.6 < -s[2] / nominal_sid_mm < 1.6:
        raise UnreliableIdentification(
            f"the source found ({s[0]:.0f}, {s[1]:.0f}, {s[2]:.0f}) mm is implausible: the "
            "beads were not identified reliably"
        )
