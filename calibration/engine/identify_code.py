"""The code of a two-layer phantom's near layer: which self-map of the layout the image shows.

Every near-perfect self-map of the near layer (rotations, mirrors, lattice translations;
:mod:`.identify`) is applied to a geometric labelling and scored against the image: bead
sizes (log of the integrated signal against ``3 log d``), blobs where the phantom has no
bead (a missing-bead code, the outline) and beads expected in the field but not seen
(weakly: beads may be hidden). Self-maps putting the phantom's origin more than 2 pitches +
5 mm from the image centre are not considered; ties are returned origin-nearest first for
the far layer to decide (:mod:`.general_identification`). Pixels of the isotropic image.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from geometry.distortion import invert_numerically

from .identify import (
    IdentificationError,
    Labelling,
    NearLayer,
    geometric_labelling,
    grow_labelling,
    mirror_xy,
)


@dataclass
class Hypothesis:
    """One labelling of the near layer under a self-map, with its code score."""

    blob: np.ndarray  # detection indices
    bead: np.ndarray  # indices into NearLayer arrays
    map_index: int
    score: float
    detail: dict


def rank_self_maps(
    lab: Labelling,
    nl: NearLayer,
    det_xy: np.ndarray,
    integral: np.ndarray,
    inside_field,
    *,
    weight_no_bead: float = 3.0,
    weight_missing: float = 0.25,
    origin_px: np.ndarray | None = None,
    position_tol_mm: float | None = None,
) -> list[Hypothesis]:
    """Score every self-map of the near layer applied to a geometric labelling; best
    first. ``inside_field`` maps (N, 2) pixels to a boolean mask (usable field). With
    ``origin_px`` (where the phantom's origin appears: the image centre), self-maps that
    would put the phantom's origin more than ``position_tol_mm`` (default 2 pitches + 5 mm)
    from it are not considered (the phantom is where phantom.json says, up to rotation)."""
    pm = mirror_xy(nl.xy, lab.mirror)
    u = pm[lab.bead]  # phantom (mirrored) positions of the labelled blobs
    logi = np.log(np.clip(integral[lab.blob], 1e-12, None))
    dmin, dmax = float(nl.diam.min()), float(nl.diam.max())
    delta = 3 * np.log(dmax / dmin) if nl.sizes_coded else 0.0
    pm_tree = cKDTree(pm)
    det_tree = cKDTree(det_xy)
    # blobs whose signal is far from every near-bead size are not near beads (far beads,
    # spurious blobs over a gap of the code): they do not count as "no bead here"
    e_all = 3 * np.log(nl.diam[lab.bead])
    c0 = float(np.median(logi - e_all))
    lo = 3 * np.log(dmin) + c0 - max(0.35, delta / 2)
    hi = 3 * np.log(dmax) + c0 + max(0.35, delta / 2)
    plausible = (logi > lo) & (logi < hi)
    nn_px_tol = 0.2 * nl.nn * _scale_of(lab.model)
    out: list[Hypothesis] = []
    u_c = None
    if origin_px is not None:
        g0 = pm[lab.bead].mean(axis=0)
        u_c = invert_numerically(lab.model, np.asarray(origin_px, float)[None], guess=g0[None])[0]
    ptol = position_tol_mm if position_tol_mm is not None else 2 * nl.nn + 5.0
    for k, m in enumerate(nl.self_maps):
        # the self-map in mirrored coordinates
        mm = np.diag([-1.0, 1.0]) if lab.mirror else np.eye(2)
        r = mm @ m[:, :2] @ mm
        t = mm @ m[:, 2]
        shift = float(np.linalg.norm(r @ u_c + t)) if u_c is not None else 0.0
        if shift > ptol:
            continue
        v = u @ r.T + t
        d, bead = pm_tree.query(v)
        on = d < 0.12 * nl.nn
        n_nobead = int((~on & plausible).sum())
        score = -weight_no_bead * n_nobead
        size_score = 0.0
        if delta > 0 and on.sum() >= 5:
            e = 3 * np.log(nl.diam[bead[on]])
            resid = logi[on] - e
            c = np.median(resid)
            rr = (resid - c) / (delta / 2)
            size_score = float(np.sum(1.0 - np.minimum(rr**2, 4.0)))
            score += size_score
        else:
            score += float(on.sum())
        # beads this hypothesis puts in the field that no blob explains
        inv_r = np.linalg.inv(r)
        back = (pm - t) @ inv_r.T  # phantom position each bead would have in the labelling
        pred = lab.model.apply(back)
        inf = inside_field(pred)
        expected = np.zeros(len(pm), bool)
        expected[inf] = True
        expected[bead[on]] = False
        if expected.any():
            dd, _ = det_tree.query(pred[expected])
            n_missing = int(np.sum(dd > nn_px_tol))
        else:
            n_missing = 0
        score -= weight_missing * n_missing
        out.append(
            Hypothesis(
                lab.blob[on],
                bead[on],
                k,
                float(score),
                {
                    "no_bead": n_nobead,
                    "missing": n_missing,
                    "size": size_score,
                    "on": int(on.sum()),
                    "origin_shift_mm": shift,
                },
            )
        )
    out.sort(key=lambda h: -h.score)
    return out


def relabel(
    hyp: Hypothesis, lab: Labelling, nl: NearLayer, det_xy: np.ndarray, centre_px
) -> Hypothesis:
    """All blobs named again under a chosen self-map: the labelling's model composed with
    the map predicts every near bead (also those the first labelling had no place for,
    e.g. beyond a translated outline), then match and fit over the whole field."""
    m = nl.self_maps[hyp.map_index]
    mm = np.diag([-1.0, 1.0]) if lab.mirror else np.eye(2)
    r = mm @ m[:, :2] @ mm
    t = mm @ m[:, 2]
    pm = mirror_xy(nl.xy, lab.mirror)
    back = (pm - t) @ np.linalg.inv(r).T
    pred = lab.model.apply(back)
    xy = np.asarray(det_xy, float)
    tree = cKDTree(xy)
    nn_px = nl.nn * _scale_of(lab.model)
    grown = grow_labelling(
        xy, tree, nl, 0, 0, lab.mirror, centre_px, nn_px, pred=pred,
        schedule=((1e9, 3, 0.2), (1e9, 3, 0.2), (1e9, 3, 0.2)),
    )  # fmt: skip
    if grown is None or len(grown.blob) < len(hyp.blob):
        return hyp
    return Hypothesis(
        grown.blob, grown.bead, hyp.map_index, hyp.score, dict(hyp.detail, relabelled=True)
    )


def _scale_of(poly) -> float:
    """Mean pixels per phantom mm of a phantom -> image polynomial (its linear part)."""
    j = poly.jacobian(np.array([poly.center]))[0]
    return float(np.sqrt(abs(np.linalg.det(j))))


def identify_near(
    det_xy: np.ndarray,
    integral: np.ndarray,
    nl: NearLayer,
    centre_px,
    scale_px_per_mm: float,
    inside_field,
    *,
    margin: float = 8.0,
    max_candidates: int = 8,
    origin_px=None,
) -> tuple[list[Hypothesis], bool]:
    """Candidate near-layer labellings, best first, and whether the code alone decides
    (the best beats the next by ``margin`` points)."""
    lab = geometric_labelling(
        det_xy, nl, np.asarray(centre_px, float), scale_px_per_mm, origin_px=origin_px
    )
    ranked = rank_self_maps(lab, nl, det_xy, integral, inside_field, origin_px=origin_px)
    if not ranked:
        raise IdentificationError(
            "no orientation of the phantom puts its origin near the image centre: the phantom "
            "is not where phantom.json places it, or it is the wrong phantom"
        )
    best = ranked[0]
    close = [h for h in ranked if best.score - h.score < margin]
    # ties of the code: the phantom's origin nearest the image centre first
    close.sort(key=lambda h: (h.detail["origin_shift_mm"] > 0.5 * nl.nn, -h.score))
    decided = len(close) == 1
    chosen = close[:max_candidates] if not decided else [best]
    return [relabel(h, lab, nl, det_xy, centre_px) for h in chosen], decided
