"""Distortion and effective source from named near-layer blobs of a bead phantom.

Given detections paired with ``phantom.beads`` (by :mod:`.correspond` or :mod:`.identify`):

1. the mirror (a device storing mirrored images) and the mounting rotation from a linear
   fit phantom mm -> image mm;
2. projections that touch a bead of the other layer, and crowded blobs, left out of the
   fits when enough remain (their centroids are biased);
3. alternately: the distortion polynomial from near beads to their projections from the
   current source (degree by leave-one-out on the first pass), far beads matched to the
   remaining blobs, and the source from the dewarped far beads (:mod:`.source`), until the
   source moves less than 1 micrometre;
4. refusals of :mod:`.bead_checks` (near-layer coverage, far-layer agreement).

Pixels of the flip-corrected image, mm in the detector frame (CONVENTIONS.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.spatial import cKDTree

from geometry.distortion import PolyFit, fit_poly, fit_poly_select_order

from .bead_checks import MIN_FAR_BEADS, MIN_NEAR_BEADS, check_coverage, check_far_layer
from .detect import Detections
from .detector import project_to_detector
from .phantom import Phantom
from .pixels import inside_hull, predicted_stored, to_mm, to_px
from .result import CalibrationError
from .source import SourceEstimate, estimate_source


@dataclass
class BeadFit:
    """State of the fit of one labelling (shared by its stages); pixels flip-corrected."""

    det: Detections
    phantom: Phantom
    xy_stored: np.ndarray  # (N, 2) detections, stored-image pixels (noise added)
    xy: np.ndarray  # (N, 2) the same, flip-corrected
    near_blob: np.ndarray  # (M,) detection index of each named near bead
    near_bead: np.ndarray  # (M,) its index in phantom.beads
    near_indices: np.ndarray  # all plane-0 beads (indices in phantom.beads)
    near_px: np.ndarray  # (M, 2) flip-corrected pixels of the named near beads
    holdout: np.ndarray  # (M,) bool, kept out of the distortion fit
    flip: bool
    rot_deg: float
    xyz: np.ndarray  # (B, 3) bead centres, mm, mounting rotation applied
    size: tuple[int, int]
    spacing: tuple[float, float]
    source: np.ndarray  # current source estimate, mm
    far_idx_all: np.ndarray  # all plane-1 beads (indices in phantom.beads)
    cand_idx: np.ndarray  # detections not named as near beads (far candidates)
    touch_near: np.ndarray
    touch_far: np.ndarray
    crowded: np.ndarray
    fit: PolyFit | None = None
    fit_sel: np.ndarray | None = None  # (M,) bool, near beads given to the fit
    src_est: SourceEstimate | None = None
    far_bead: np.ndarray = field(default_factory=lambda: np.zeros(0, int))
    far_blob: np.ndarray = field(default_factory=lambda: np.zeros(0, int))


def fit_named_beads(
    det: Detections,
    phantom: Phantom,
    xy_stored: np.ndarray,
    near_blob: np.ndarray,
    near_bead_index: np.ndarray,
    near_indices: np.ndarray,
    pitch_px: float,
    size: tuple[int, int],
    spacing: tuple[float, float],
    nominal_sid_mm: float,
    holdout_ids: list[str],
    *,
    any_rotation: bool = False,
    far_check: bool = False,
) -> BeadFit:
    """Distortion and source from named near-layer blobs (see the module doc).

    ``near_blob``/``near_bead_index`` pair detections with ``phantom.beads`` entries;
    ``near_indices`` are all plane-0 beads; ``pitch_px`` the near spacing in the image.
    The mounting rotation is snapped to multiples of 90 degrees (``any_rotation``: only
    when within 2 degrees of one, else kept as found). ``far_check`` refuses a far layer
    that does not agree with one plausible source (the check of a general identification).
    """
    s = _start(det, phantom, xy_stored, near_blob, near_bead_index, near_indices, size,
               spacing, nominal_sid_mm, holdout_ids, any_rotation)  # fmt: skip
    has_far = phantom.has_far_layer
    if far_check and has_far:
        # projections that touch a bead of the other layer give biased centroids, and so
        # do blobs with another blob just beside them
        s.crowded = _crowded(s.xy, det.radius, 3.0)
        _exclude_touching(s)
    for it in range(6):
        if far_check and has_far and it > 0:
            # again with the source found (the nominal one puts far beads a few px off)
            _exclude_touching(s)
        _fit_distortion(s, it)
        if not has_far:
            break
        pi, ci = _far_matches(s, it, pitch_px, far_check)
        moved = _fit_source(s, pi, ci)
        if it >= 1 and moved < 1e-3:
            break
    assert s.fit is not None
    if far_check and s.src_est is not None:
        check_far_layer(
            s.src_est, s.xyz[s.far_idx_all], s.fit.poly, s.source, det, s.flip, size, spacing,
            nominal_sid_mm, s.near_px[s.fit_sel], pitch_px, s.touch_far,
        )  # fmt: skip
    return s


def _start(det, phantom, xy_stored, near_blob, near_bead_index, near_indices, size, spacing,
           nominal_sid_mm, holdout_ids, any_rotation) -> BeadFit:  # fmt: skip
    """The state before the first fit: pose, hold-outs, nominal source, far candidates."""
    blob_index = np.asarray(near_blob, int)
    near_bead = np.asarray(near_bead_index, int)
    flip, xy, rot_deg, xyz = _pose(phantom, xy_stored, blob_index, near_bead, size, spacing,
                                   any_rotation)  # fmt: skip
    ids = phantom.ids
    holdout = np.array([ids[b] in set(holdout_ids) for b in near_bead], bool)
    far_idx_all = np.flatnonzero(phantom.planes == 1)
    used_blobs = set(blob_index.tolist())
    cand_idx = np.array([i for i in range(len(xy)) if i not in used_blobs], int)
    return BeadFit(
        det, phantom, xy_stored, xy, blob_index, near_bead, np.asarray(near_indices, int),
        xy[blob_index], holdout, flip, rot_deg, xyz, size, spacing,
        np.array([0.0, 0.0, -nominal_sid_mm]), far_idx_all, cand_idx,
        np.zeros(len(near_bead), bool), np.zeros(len(far_idx_all), bool), np.zeros(len(xy), bool),
    )  # fmt: skip


def _pose(phantom, xy_stored, blob_index, bead_index, size, spacing, any_rotation):
    """Mirror and mounting rotation from a linear fit phantom mm -> image mm.

    Returns (flip, flip-corrected detections, rotation degrees, rotated bead centres)."""
    w, _h = size
    sx, sy = spacing
    pxy = phantom.xyz[bead_index, :2]
    obs = xy_stored[blob_index] * np.array([sx, sy])
    a_mat = _linear_part(pxy, obs)
    flip = bool(np.linalg.det(a_mat) < 0)
    xy = xy_stored.copy()
    if flip:
        xy[:, 0] = w - 1 - xy[:, 0]
    obs = xy[blob_index] * np.array([sx, sy])
    a_mat = _linear_part(pxy, obs)
    theta = np.degrees(np.arctan2(a_mat[1, 0] - a_mat[0, 1], a_mat[0, 0] + a_mat[1, 1]))
    rot_deg = int(90 * np.round(theta / 90)) % 360
    if any_rotation and abs(((theta - rot_deg) + 180) % 360 - 180) > 2.0:
        rot_deg = round(float(theta) % 360, 2)
    xyz = phantom.xyz.copy()
    xyz[:, :2] = xyz[:, :2] @ _rot(rot_deg).T
    return flip, xy, rot_deg, xyz


def _exclude_touching(s: BeadFit) -> None:
    """Touching projections from the current source; crowded near blobs join them when
    enough near beads remain."""
    s.touch_near, s.touch_far = _touching(
        s.phantom, s.xyz, s.near_bead, s.far_idx_all, s.source, s.spacing
    )
    if np.sum(~s.holdout & ~s.touch_near & ~s.crowded[s.near_blob]) >= 2 * MIN_NEAR_BEADS:
        s.touch_near |= s.crowded[s.near_blob]


def _fit_distortion(s: BeadFit, it: int) -> None:
    """Polynomial from the near beads to their projections from the current source (the
    degree chosen by leave-one-out on the first pass, kept after); coverage checked once."""
    w, h = s.size
    sx, sy = s.spacing
    centre_px = ((w - 1) / 2, (h - 1) / 2)
    scale_px = ((w - 1) / 2, (h - 1) / 2)
    tgt = to_px(project_to_detector(s.xyz[s.near_bead], s.source), w, h, sx, sy)
    fit_sel = ~s.holdout & ~s.touch_near
    s.fit_sel = fit_sel
    if fit_sel.sum() < MIN_NEAR_BEADS:
        raise CalibrationError(
            f"only {int(fit_sel.sum())} of {len(s.phantom.plane_mask(0).nonzero()[0])} "
            f"near-layer beads found; at least {MIN_NEAR_BEADS} needed"
        )
    if s.fit is None:
        s.fit = fit_poly_select_order(s.near_px[fit_sel], tgt[fit_sel], centre_px, scale_px)
    else:
        s.fit = fit_poly(s.near_px[fit_sel], tgt[fit_sel], s.fit.poly.order, centre_px, scale_px)
    if it == 0:
        check_coverage(
            s.fit.poly, s.xyz[s.near_indices], s.source,
            s.near_px[fit_sel][s.fit.weights > 0.5], s.det, s.flip, s.size, s.spacing,
        )  # fmt: skip


def _far_matches(s: BeadFit, it: int, pitch_px: float, far_check: bool):
    """Far beads (indices into ``far_idx_all``) and the candidate blobs (indices into
    ``cand_idx``) they are matched to; a wide search first, a tight one after."""
    w, h = s.size
    sx, sy = s.spacing
    pred = predicted_stored(s.fit.poly, s.xyz[s.far_idx_all], s.source, w, h, sx, sy, False)
    cand_xy = s.xy[s.cand_idx]
    if it == 0:
        pi, ci = _match_far(pred, cand_xy, pitch_px, search=0.45, tol=0.15)
    else:
        pi, ci = _match_far(pred, cand_xy, pitch_px, search=0.12, tol=0.08)
    if len(pi) < MIN_FAR_BEADS:
        raise CalibrationError(
            f"only {len(pi)} far-layer (plane 1) beads found; at least {MIN_FAR_BEADS} are "
            "needed for the source position"
        )
    if not far_check:
        return pi, ci
    # only far beads the distortion model covers (inside the named near beads'
    # hull: outside it the polynomial extrapolates) and not touching a near bead
    covered = inside_hull(s.near_px[s.fit_sel], s.xy[s.cand_idx[ci]], -0.5 * pitch_px)
    pi, ci = pi[covered], ci[covered]
    keep = ~s.touch_far[pi] & ~s.crowded[s.cand_idx[ci]]
    if keep.sum() < MIN_FAR_BEADS:
        keep = ~s.touch_far[pi]
    if keep.sum() >= MIN_FAR_BEADS:
        pi, ci = pi[keep], ci[keep]
    if len(pi) < MIN_FAR_BEADS:
        raise CalibrationError(
            f"only {len(pi)} far-layer (plane 1) beads found over the near layer's area; "
            f"at least {MIN_FAR_BEADS} are needed for the source position"
        )
    return pi, ci


def _fit_source(s: BeadFit, pi: np.ndarray, ci: np.ndarray) -> float:
    """Source from the dewarped matched far beads; returns how far it moved (mm)."""
    w, h = s.size
    sx, sy = s.spacing
    s.far_bead = s.far_idx_all[pi]
    s.far_blob = s.cand_idx[ci]
    und = s.fit.poly.apply(s.xy[s.far_blob])
    det_mm = to_mm(und, w, h, sx, sy)
    try:
        s.src_est = estimate_source(s.xyz[s.far_bead], det_mm)
    except ValueError as exc:
        raise CalibrationError(f"effective source could not be estimated: {exc}") from None
    moved = np.linalg.norm(s.src_est.source_mm - s.source)
    s.source = s.src_est.source_mm
    return float(moved)


def _rot(deg: float) -> np.ndarray:
    """2-D rotation by ``deg`` degrees (counter-clockwise in x, y)."""
    t = np.deg2rad(deg)
    return np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])


def _linear_part(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The 2x2 linear part of the least-squares affine map ``src`` -> ``dst``."""
    a = np.column_stack([src, np.ones(len(src))])
    coef, *_ = np.linalg.lstsq(a, dst, rcond=None)
    return coef[:2].T


def _match_far(pred: np.ndarray, cand: np.ndarray, pitch: float, *, search: float, tol: float):
    """Match predicted far-bead pixels to candidate blobs after a common translation."""
    if len(cand) == 0 or len(pred) == 0:
        return np.zeros(0, int), np.zeros(0, int)
    d = cand[None, :, :] - pred[:, None, :]
    dist = np.linalg.norm(d, axis=2)
    vecs = d[dist < search * pitch]
    if len(vecs) == 0:
        return np.zeros(0, int), np.zeros(0, int)
    dv = np.linalg.norm(vecs[:, None] - vecs[None], axis=2)
    support = (dv < 0.08 * pitch).sum(axis=1)
    best = np.argmax(support)
    shift = vecs[dv[best] < 0.08 * pitch].mean(axis=0)
    moved = pred + shift
    dist = np.linalg.norm(cand[None] - moved[:, None], axis=2)
    pi, ci = [], []
    for k in np.argsort(dist.min(axis=1)):
        j = int(np.argmin(dist[k]))
        if dist[k, j] < tol * pitch and j not in ci and int(np.argmin(dist[:, j])) == k:
            pi.append(int(k))
            ci.append(j)
    return np.array(pi, int), np.array(ci, int)


def _crowded(xy: np.ndarray, radius: np.ndarray, gap_px: float) -> np.ndarray:
    """Blobs with another blob closer than the sum of their radii plus ``gap_px`` (the
    neighbour reaches into the centroid's window and background ring)."""
    if len(xy) < 2:
        return np.zeros(len(xy), bool)
    tree = cKDTree(xy)
    d, j = tree.query(xy, k=min(4, len(xy)))
    lim = radius[:, None] + radius[j] + gap_px
    return np.any((d[:, 1:] < lim[:, 1:]), axis=1)


def _touching(phantom, xyz, near_bead, far_idx, source, spacing):
    """Masks of named near beads and of far beads whose projections touch (or overlap)
    a projection of the other layer (plus two pixels of blur)."""
    d = phantom.diameters
    pn = project_to_detector(xyz[near_bead], source)
    pf = project_to_detector(xyz[far_idx], source)
    all_near = np.flatnonzero(phantom.planes == 0)
    pn_all = project_to_detector(xyz[all_near], source)
    sz = -source[2]
    m_n = sz / (sz + xyz[near_bead, 2])
    m_f = sz / (sz + xyz[far_idx, 2])
    m_all = sz / (sz + xyz[all_near, 2])
    margin = 1.5 * max(spacing)  # overlapping or touching: one merged blob
    rf_max = float(np.max(d[far_idx] / 2 * m_f)) if len(far_idx) else 0.0
    rn_max = float(np.max(d[all_near] / 2 * m_all))
    tf = cKDTree(pf) if len(pf) else None
    tn = cKDTree(pn_all)
    touch_near = np.zeros(len(near_bead), bool)
    if tf is not None:
        for k, lst in enumerate(tf.query_ball_point(pn, d[near_bead] / 2 * m_n + rf_max + margin)):
            for j in lst:
                if np.linalg.norm(pf[j] - pn[k]) < d[near_bead[k]] / 2 * m_n[k] + d[far_idx[j]] / 2 * m_f[j] + margin:
                    touch_near[k] = True
                    break
    touch_far = np.zeros(len(far_idx), bool)
    for j, lst in enumerate(tn.query_ball_point(pf, d[far_idx] / 2 * m_f + rn_max + margin)):
        for k in lst:
            if np.linalg.norm(pn_all[k] - pf[j]) < d[all_near[k]] / 2 * m_all[k] + d[far_idx[j]] / 2 * m_f[j] + margin:
                touch_far[j] = True
                break
    return touch_near, touch_far
