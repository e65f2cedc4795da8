"""Calibration by the general identification of :mod:`.identify`, ties decided by the far layer.

Any two-layer phantom (square, hexagonal or irregular near layer; code by bead sizes,
missing beads or the outline): every labelling the code leaves possible is fitted
(:mod:`.bead_fit`); only a right one lets the far beads agree with one plausible source.
One labelling fitting: it wins; several: the clearly better far-layer fit wins, else the
image is refused as ambiguous with what to do. Pixels of the stored image.
"""

from __future__ import annotations

import numpy as np

from .bead_fit import fit_named_beads
from .bead_result import bead_result
from .detect import Detections
from .identify import IdentificationError, near_layer
from .identify_code import identify_near
from .phantom import Phantom
from .pixels import inside_mask
from .result import CalibrationError, CalibrationResult


def calibrate_general(
    det: Detections,
    phantom: Phantom,
    size: tuple[int, int],
    spacing: tuple[float, float],
    nominal_sid_mm: float,
    holdout_ids: list[str],
    position_noise_px: float,
    rng,
    metadata: dict,
) -> CalibrationResult:
    """Near layer named by :mod:`.identify`; ties of the code decided by the far layer."""
    w, h = size
    sx, sy = spacing
    if len(det) < 9:
        raise CalibrationError(
            f"only {len(det)} bead-like blobs detected: not an image of phantom '{phantom.name}'"
        )
    if not phantom.has_far_layer:
        raise CalibrationError(
            f"phantom '{phantom.name}' has no far layer (plane 1): a single-plane bead phantom "
            "must be a square grid with a code of larger beads, or a grid plate"
        )
    xy_stored = det.xy.copy()
    if position_noise_px > 0:
        gen = np.random.default_rng(rng)
        xy_stored = xy_stored + gen.normal(scale=position_noise_px, size=xy_stored.shape)
    nl = near_layer(phantom)
    s_mean = 0.5 * (sx + sy)
    iso = np.array([sx, sy]) / s_mean  # isotropic pixels keep the layout's shape
    centre = (
        np.array(det.fov_centre) if np.isfinite(det.fov_radius) else np.array([(w - 1) / 2, (h - 1) / 2])
    )
    m_near = nominal_sid_mm / (nominal_sid_mm + nl.z)
    scale = m_near / s_mean

    def inside_field(p_iso):
        return inside_mask(det.fov_mask, np.asarray(p_iso) / iso)

    try:
        hyps, decided = identify_near(
            xy_stored * iso, det.integral, nl, centre * iso, scale, inside_field,
            origin_px=np.array([(w - 1) / 2, (h - 1) / 2]) * iso,
        )  # fmt: skip
    except IdentificationError as exc:
        raise CalibrationError(str(exc)) from None
    pitch_px = nl.nn * scale
    results, failures = [], []
    for hyp in hyps:
        try:
            fit = fit_named_beads(
                det, phantom, xy_stored, hyp.blob, nl.index[hyp.bead], nl.index, pitch_px,
                size, spacing, nominal_sid_mm, holdout_ids, any_rotation=True, far_check=True,
            )  # fmt: skip
            res = bead_result(fit, metadata)
        except CalibrationError as exc:
            failures.append(str(exc))
            continue
        res.profile["identification"] = {
            "method": "general",
            "code_decided": decided,
            "candidates": len(hyps),
            "code_score": hyp.score,
            "code_detail": hyp.detail,
        }
        results.append(res)
    if not results:
        raise CalibrationError(failures[0])
    if len(results) == 1:
        # one labelling only: the code decided, or the far layer refused the others
        results[0].profile["identification"]["decided_by"] = "code" if decided else "far layer"
        return results[0]
    # several labellings let the far layer fit: the clearly better far fit wins
    q = sorted(results, key=lambda r: _far_quality(r))
    if _far_quality(q[0]) < 0.4 * _far_quality(q[1]):
        q[0].profile["identification"]["decided_by"] = "far layer"
        return q[0]
    raise CalibrationError(
        "the phantom orientation is ambiguous: its code and its far layer fit "
        f"{len(results)} orientations equally; rotate the phantom so that at least three "
        "coded beads (or its asymmetric edge) are in the field, then take the image again"
    )


def _far_quality(res: CalibrationResult) -> float:
    """Far-layer misfit in pixels (RMS of the inlier residuals), lower is better."""
    vals = [v for v in res.profile.get("source_residuals_px", {}).values()]
    if not vals:
        return float("inf")
    return float(np.sqrt(np.mean(np.square(vals)))) + 1e-3
