"""The ``profile.json`` object and :class:`~.result.CalibrationResult` of a bead-phantom fit.

From a finished :class:`~.bead_fit.BeadFit`: the inverse map on the usable field, the
residuals of every named bead (near: to its projection from the fitted source, far: of the
source fit), the beads expected in the field but not found, ``K`` from the source, and the
profile fields of CONVENTIONS.md. Pixels of the flip-corrected image unless "stored".
"""

from __future__ import annotations

import datetime as _dt

import numpy as np

from geometry.camera import Camera
from geometry.distortion import Poly2D, fit_inverse

from .bead_fit import BeadFit
from .detect import Detections
from .detector import project_to_detector
from .pixels import inside_mask, predicted_stored, to_px
from .result import PROFILE_FORMAT, CalibrationResult


def bead_result(s: BeadFit, metadata: dict) -> CalibrationResult:
    """Profile and result of a finished fit; ``metadata`` may carry ``device``,
    ``primary_angle_deg``, ``secondary_angle_deg``, ``calibrated_by`` and ``image``."""
    w, h = s.size
    sx, sy = s.spacing
    src_est, source, det = s.src_est, s.source, s.det
    forward = s.fit.poly
    inverse = _inverse_map(forward, det, s.flip, w, h)
    # residuals over all near beads (fit inliers and hold-outs)
    tgt = to_px(project_to_detector(s.xyz[s.near_bead], source), w, h, sx, sy)
    und_near = forward.apply(s.near_px)
    res_px = und_near - tgt
    used = np.zeros(len(s.near_bead), bool)
    used[np.flatnonzero(s.fit_sel)[s.fit.weights > 0.5]] = True
    rn_px = np.linalg.norm(res_px, axis=1)
    rn_mm = np.linalg.norm(res_px * np.array([sx, sy]), axis=1)
    ids = s.phantom.ids
    near_ids = [ids[b] for b in s.near_bead]
    K = Camera.from_source(source, w, h, (sx, sy)).K if src_est is not None else None
    beads = _near_entries(s, und_near, tgt, rn_px, used)
    far_res = _add_far_entries(s, beads)
    hidden = _expected_hidden(s, {b["id"] for b in beads})
    md = metadata
    profile = {
        "format": PROFILE_FORMAT,
        "version": 1,
        "device": md.get("device"),
        "phantom": s.phantom.name,
        "image": md.get("image"),
        "primary_angle_deg": md.get("primary_angle_deg"),
        "secondary_angle_deg": md.get("secondary_angle_deg"),
        "width": int(w),
        "height": int(h),
        "pixel_spacing_mm": [float(sx), float(sy)],
        "flip_horizontal": s.flip,
        "phantom_rotation_deg": s.rot_deg,
        "forward": forward.to_dict(),
        "inverse": inverse.to_dict(),
        "source": "fitted" if src_est is not None else None,
        "source_mm": [float(v) for v in source] if src_est is not None else None,
        "source_to_detector_mm": float(-source[2]) if src_est is not None else None,
        "source_uncertainty_mm": (
            {
                "lateral": src_est.lateral_sd_mm,
                "axial": src_est.axial_sd_mm,
                "covariance": src_est.covariance.tolist(),
            }
            if src_est is not None
            else None
        ),
        "K": K.tolist() if K is not None else None,
        "residuals_px": _summary(rn_px, near_ids, used),
        "residuals_mm": _summary(rn_mm, near_ids, used),
        "loo_rms_px": float(s.fit.loo_rms),
        "source_residuals_px": far_res,
        "beads_used": int(used.sum()),
        "beads_far_used": int(src_est.inliers.sum()) if src_est is not None else 0,
        "beads_detected": int(len(det)),
        "beads_hidden": sorted(hidden),
        "beads": beads,
        "beads_bright": det.beads_bright,
        "calibrated_by": md.get("calibrated_by"),
        "calibrated_at": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }
    return CalibrationResult(
        profile=profile,
        forward=forward,
        inverse=inverse,
        source=src_est,
        K=K,
        flip=s.flip,
        rotation_deg=s.rot_deg,
        detections=det,
        near_ids=near_ids,
        near_detected_px=s.xy_stored[s.near_blob],
        near_target_px=tgt,
        near_used=used,
        far_ids=[ids[b] for b in s.far_bead],
        far_detected_px=s.xy_stored[s.far_blob] if len(s.far_blob) else np.zeros((0, 2)),
        holdout_ids=[n for n, ho in zip(near_ids, s.holdout, strict=True) if ho],
    )


def _inverse_map(forward: Poly2D, det: Detections, flip: bool, w: int, h: int) -> Poly2D:
    """Inverse map fitted on a dense grid of the usable field (flip-corrected pixels)."""
    vv, uu = np.mgrid[0:h:8, 0:w:8]
    mask = det.fov_mask[vv, uu] if not flip else det.fov_mask[vv, w - 1 - uu]
    region = np.column_stack([uu[mask], vv[mask]]).astype(np.float64)
    return fit_inverse(forward, region)


def _near_entries(s: BeadFit, und_near, tgt, rn_px, used) -> list[dict]:
    """Profile ``beads`` entries of the named near beads (plane 0)."""
    ids = s.phantom.ids
    return [
        {
            "id": ids[b],
            "plane": 0,
            "detected_px": [float(v) for v in s.xy_stored[s.near_blob[k]]],
            "dewarped_px": [float(v) for v in und_near[k]],
            "expected_px": [float(v) for v in tgt[k]],
            "residual_px": float(rn_px[k]),
            "used": bool(used[k]),
            "held_out": bool(s.holdout[k]),
        }
        for k, b in enumerate(s.near_bead)
    ]


def _add_far_entries(s: BeadFit, beads: list[dict]) -> dict:
    """Append the matched far beads (plane 1) to ``beads``; returns their source-fit
    residuals (pixels) by id (empty without a fitted source)."""
    far_res: dict = {}
    if s.src_est is None:
        return far_res
    w, h = s.size
    sx, sy = s.spacing
    ids = s.phantom.ids
    und_far = s.fit.poly.apply(s.xy[s.far_blob])
    exp_far = to_px(project_to_detector(s.xyz[s.far_bead], s.source), w, h, sx, sy)
    for k, b in enumerate(s.far_bead):
        r = float(np.linalg.norm(und_far[k] - exp_far[k]))
        far_res[ids[b]] = r
        beads.append(
            {
                "id": ids[b],
                "plane": 1,
                "detected_px": [float(v) for v in s.xy_stored[s.far_blob[k]]],
                "dewarped_px": [float(v) for v in und_far[k]],
                "expected_px": [float(v) for v in exp_far[k]],
                "residual_px": r,
                "used": bool(s.src_est.inliers[k]),
                "held_out": False,
            }
        )
    return far_res


def _summary(values: np.ndarray, names: list[str], used: np.ndarray) -> dict:
    """RMS and max over the beads the fit used, and every bead's value by id."""
    return {
        "rms": float(np.sqrt(np.mean(values[used] ** 2))) if np.any(used) else None,
        "max": float(np.max(values[used])) if np.any(used) else None,
        "per_bead": {n: float(v) for n, v in zip(names, values, strict=True)},
    }


def _expected_hidden(s: BeadFit, found: set[str]) -> list[str]:
    """Ids of beads predicted inside the usable field that were not found."""
    w, h = s.size
    sx, sy = s.spacing
    pred = predicted_stored(s.fit.poly, s.xyz, s.source, w, h, sx, sy, s.flip)
    inside = inside_mask(s.det.fov_mask, pred)
    return [
        b.id for b, ok in zip(s.phantom.beads, inside, strict=True) if ok and b.id not in found
    ]
