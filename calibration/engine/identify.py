"""General identification of a two-layer phantom's near layer from ``phantom.json`` alone.

Nothing is assumed about the layout beyond what the phantom file says: the near layer may
be a square, hexagonal or irregular arrangement, coded by larger beads (any size ratio),
by missing beads or by an asymmetric outline; the phantom may be turned by any angle and
mirrored (a mirroring device).

1. Geometry (:func:`geometric_labelling`): seed hypotheses pair two neighbouring blobs near
   the field centre with every pair of neighbouring near beads of matching length (both
   mirror states) and count, in a few pitches around the seed, the near beads the implied
   similarity puts on a blob; the best hypotheses grow over the whole field by alternating
   nearest-blob matching and a robust polynomial fit phantom -> image (order 1, 2, 3).
   This labels the blobs correctly up to the layout's own self-similarity.
2. Code (:func:`.identify_code.rank_self_maps`): every near-perfect self-map of the near
   layer (rotations, mirrors, lattice translations, found by matching bead pairs of the
   phantom with itself) is applied to that labelling and scored against the image: bead
   sizes (log of the integrated signal against ``3 log d``), blobs that fall where the
   phantom has no bead (a missing-bead code, the outline), and beads expected in the field
   but not seen (weakly: beads may be hidden).
   Self-maps that would put the phantom's origin (the detector-frame origin, seen at the
   image centre) more than 2 pitches + 5 mm away are not considered: the phantom is where
   phantom.json places it, up to rotation and mirror. Ties of the code are tried with the
   origin nearest the image centre first.
3. :mod:`.general_identification` then fits the distortion and the source for the
   best-ranked labelling; when the code leaves several possible, each is tried and the far
   layer decides (only a right labelling lets the far beads agree with one plausible source
   position). Several fitting equally -> refused, with what to do.

This module holds the near layer as a layout (its self-maps) and the geometric labelling
(step 1); the code's hypotheses and :func:`~.identify_code.identify_near`, the entry
point, are :mod:`.identify_code`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from geometry.distortion import fit_poly
from refusal import Refused

from .phantom import Phantom


class IdentificationError(Refused):
    """The near layer cannot be identified; the message says why."""


@dataclass
class NearLayer:
    """Plane-0 beads of a phantom, prepared for identification (cached per phantom)."""

    index: np.ndarray  # (N,) positions in Phantom.beads
    xy: np.ndarray  # (N, 2) mm
    z: float
    diam: np.ndarray  # (N,)
    nn: float  # median nearest-neighbour distance, mm
    pairs: np.ndarray  # (P, 2) neighbouring bead pairs (both directions)
    tree: cKDTree
    self_maps: list[np.ndarray]  # 2x3 affine maps (rotation/mirror + translation), identity first
    sizes_coded: bool


@dataclass
class Labelling:
    blob: np.ndarray  # (M,) detection indices
    bead: np.ndarray  # (M,) indices into NearLayer arrays
    model: object  # Poly2D phantom mm (mirrored when ``mirror``) -> image pixels
    mirror: bool
    score: float = 0.0


_CACHE: dict[tuple, NearLayer] = {}


def near_layer(phantom: Phantom) -> NearLayer:
    key = (phantom.name, tuple(phantom.ids), tuple(map(tuple, np.round(phantom.xyz, 4))))
    hit = _CACHE.get(key)
    if hit is not None:
        return hit
    idx = np.flatnonzero(phantom.planes == 0)
    xy = phantom.xyz[idx, :2].copy()
    z = float(np.median(phantom.xyz[idx, 2]))
    diam = phantom.diameters[idx].copy()
    tree = cKDTree(xy)
    d, _ = tree.query(xy, k=2)
    nn = float(np.median(d[:, 1]))
    pr = tree.query_pairs(1.45 * nn, output_type="ndarray")
    pairs = np.vstack([pr, pr[:, ::-1]]) if len(pr) else np.zeros((0, 2), int)
    sizes_coded = bool(diam.max() >= 1.25 * diam.min())
    nl = NearLayer(idx, xy, z, diam, nn, pairs, tree, [], sizes_coded)
    nl.self_maps = _self_maps(nl)
    if len(_CACHE) > 16:
        _CACHE.clear()
    _CACHE[key] = nl
    return nl


def _self_maps(nl: NearLayer, min_overlap: float = 0.15) -> list[np.ndarray]:
    """Rigid maps (with or without mirror) taking the near layer largely onto itself."""
    xy = nl.xy
    n = len(xy)
    ident = np.array([[1.0, 0, 0], [0, 1.0, 0]])
    if n < 4 or len(nl.pairs) == 0:
        return [ident]
    # several reference pairs: a map is found from a pair whose images are both beads, and
    # a code of missing beads may leave a gap where one reference pair would land
    centre_order = np.argsort(np.linalg.norm(xy - xy.mean(axis=0), axis=1))
    v = nl.pairs
    lengths = np.linalg.norm(xy[v[:, 1]] - xy[v[:, 0]], axis=1)
    maps = []
    for c in centre_order[:: max(1, len(xy) // 50)][:4]:
        d, j = nl.tree.query(xy[c], k=2)
        p0, p1 = xy[c], xy[j[1]]
        L = np.linalg.norm(p1 - p0)
        cand = v[np.abs(lengths - L) < 0.02 * L]
        for mirror in (False, True):
            mm = np.diag([-1.0, 1.0]) if mirror else np.eye(2)
            a = (p1 - p0) @ mm.T
            ang_a = np.arctan2(a[1], a[0])
            q0, q1 = xy[cand[:, 0]], xy[cand[:, 1]]
            bvec = q1 - q0
            th = np.arctan2(bvec[:, 1], bvec[:, 0]) - ang_a
            for t, qa in zip(th, q0, strict=True):
                r = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]]) @ mm
                tr = qa - r @ p0
                maps.append(np.column_stack([r, tr]))
    if not maps:
        return [ident]
    # dedupe before the overlap test
    uniq = {}
    for m in maps:
        uniq.setdefault(_map_key(m, nl.nn), m)
    maps = list(uniq.values())
    maps_a = np.array(maps)
    # overlap: beads mapped within 0.1 nn of a bead (sampled for speed)
    sample = xy if n <= 400 else xy[np.random.default_rng(0).choice(n, 400, replace=False)]
    mapped = np.einsum("mij,nj->mni", maps_a[:, :, :2], sample) + maps_a[:, None, :, 2]
    dd, _ = nl.tree.query(mapped.reshape(-1, 2))
    ov = (dd.reshape(len(maps_a), -1) < 0.1 * nl.nn).mean(axis=1)
    sel = ov >= min_overlap
    keep, ov = maps_a[sel], ov[sel]
    out = [ident]
    seen = {_map_key(ident, nl.nn)}
    for m in keep[np.argsort(-ov, kind="stable")]:
        key = _map_key(m, nl.nn)
        if key not in seen:
            seen.add(key)
            out.append(m)
    return out


def _map_key(m: np.ndarray, nn: float) -> tuple:
    return tuple(np.round(m[:, :2].ravel() * 20).astype(int)) + tuple(
        np.round(m[:, 2] / (0.05 * nn)).astype(int)
    )


def mirror_xy(xy: np.ndarray, mirror: bool) -> np.ndarray:
    return xy * np.array([-1.0, 1.0]) if mirror else xy


def geometric_labelling(
    det_xy: np.ndarray,
    nl: NearLayer,
    centre_px: np.ndarray,
    scale_px_per_mm: float,
    *,
    origin_px: np.ndarray | None = None,
    position_tol_mm: float | None = None,
    n_seeds: int = 10,
) -> Labelling:
    """Label blobs with near beads up to the layout's self-similarity (see module doc).

    ``origin_px`` is where the phantom's origin (the detector-frame origin) appears, the
    image centre: a seed blob at distance r from it can only be a bead at about r / scale
    from the phantom's origin (any rotation), within ``position_tol_mm`` (default
    2 pitches + 5 mm: mounting tolerance, magnification and distortion)."""
    xy = np.asarray(det_xy, dtype=np.float64)
    if len(xy) < 9:
        raise IdentificationError(f"only {len(xy)} bead-like blobs detected; not a phantom image")
    tree = cKDTree(xy)
    nn_px = nl.nn * scale_px_per_mm
    tol = 0.25 * nn_px
    # local neighbourhoods of each bead (padded index lists)
    rho = 3.2 * nl.nn
    nbrs = nl.tree.query_ball_point(nl.xy, rho)
    kmax = max(len(v) for v in nbrs)
    nb_idx = np.zeros((len(nl.xy), kmax), int)
    nb_ok = np.zeros((len(nl.xy), kmax), bool)
    for i, v in enumerate(nbrs):
        nb_idx[i, : len(v)] = v
        nb_ok[i, : len(v)] = True
    order = np.argsort(np.linalg.norm(xy - centre_px, axis=1))[:n_seeds]
    pairs = nl.pairs
    plen = np.linalg.norm(nl.xy[pairs[:, 1]] - nl.xy[pairs[:, 0]], axis=1)
    prad = np.linalg.norm(nl.xy[pairs[:, 0]], axis=1)
    o_px = np.asarray(origin_px if origin_px is not None else centre_px, float)
    ptol = position_tol_mm if position_tol_mm is not None else 2 * nl.nn + 5.0
    hyps: list[tuple[float, complex, complex, bool, int]] = []
    for s in order:
        if hyps and max(h[0] for h in hyps) >= 0.75 * np.median(nb_ok.sum(axis=1)) ** 0.75:
            break
        r_seed = np.linalg.norm(xy[s] - o_px) / scale_px_per_mm
        dn, jn = tree.query(xy[s], k=min(7, len(xy)))
        for d_s, j in zip(dn[1:], jn[1:], strict=True):
            if not 0.6 * nn_px < d_s < 1.6 * nn_px:
                continue
            img_v = complex(*(xy[j] - xy[s]))
            ok = np.abs(plen * scale_px_per_mm - d_s) < 0.15 * d_s
            ok &= np.abs(prad - r_seed) < ptol
            pp = pairs[ok]
            if len(pp) == 0:
                continue
            for mirror in (False, True):
                pm = mirror_xy(nl.xy, mirror)
                zp = pm[:, 0] + 1j * pm[:, 1]
                a = img_v / (zp[pp[:, 1]] - zp[pp[:, 0]])
                b = complex(*xy[s]) - a * zp[pp[:, 0]]
                # local check around the seed bead
                loc = nb_idx[pp[:, 0]]
                pred = a[:, None] * zp[loc] + b[:, None]
                dd, _ = tree.query(np.stack([pred.real, pred.imag], -1).reshape(-1, 2))
                hit = (dd.reshape(pred.shape) < tol) & nb_ok[pp[:, 0]]
                cnt = hit.sum(axis=1) / np.maximum(nb_ok[pp[:, 0]].sum(axis=1), 1) ** 0.25
                best = np.argsort(-cnt)[:3]
                for k in best:
                    hyps.append((float(cnt[k]), a[k], b[k], mirror, int(pp[k, 0])))
    if not hyps:
        raise IdentificationError(
            "no arrangement of neighbouring blobs matches the phantom's bead spacing: wrong "
            "phantom or wrong pixel spacing"
        )
    hyps.sort(key=lambda h: -h[0])
    best_lab: Labelling | None = None
    tried = 0
    for _cnt, a, b, mirror, _ in hyps:
        if tried >= 6:
            break
        tried += 1
        lab = grow_labelling(xy, tree, nl, a, b, mirror, centre_px, nn_px)
        if lab is not None and (best_lab is None or len(lab.blob) > len(best_lab.blob)):
            best_lab = lab
        if best_lab is not None and len(best_lab.blob) > 0.6 * len(xy):
            break
    if best_lab is None or len(best_lab.blob) < 12:
        raise IdentificationError(
            "the blobs do not form the phantom's near layer: wrong phantom or wrong pixel spacing"
        )
    return best_lab


def grow_labelling(
    xy, tree, nl, a, b, mirror, centre_px, nn_px, *, pred=None, schedule=None
) -> Labelling | None:
    """Grow a seed similarity over the field: match, fit, widen. ``pred`` (bead pixels)
    replaces the similarity ``a * z + b`` as the first prediction."""
    pm = mirror_xy(nl.xy, mirror)
    if pred is None:
        zp = pm[:, 0] + 1j * pm[:, 1]
        pred_c = a * zp + b
        pred = np.stack([pred_c.real, pred_c.imag], 1)
    seed_px = np.asarray(centre_px, float)
    c_mm = pm.mean(axis=0)
    s_mm = np.maximum(np.abs(pm - c_mm).max(axis=0), 1.0)
    model = None
    blob = bead = None
    steps = schedule or (
        (5.0, 1, 0.3), (9.0, 2, 0.25), (16.0, 3, 0.22), (30.0, 3, 0.2), (1e9, 3, 0.2), (1e9, 3, 0.2)
    )  # fmt: skip
    for radius, order, tol in steps:
        sel = np.linalg.norm(pred - seed_px, axis=1) < radius * nn_px
        ib = np.flatnonzero(sel)
        if len(ib) == 0:
            return None
        d, j = tree.query(pred[ib])
        ok = d < tol * nn_px
        ib, j = ib[ok], j[ok]
        # one bead per blob: keep the nearest
        order_ = np.argsort(d[ok])
        seen = set()
        keep = []
        for k in order_:
            if j[k] not in seen:
                seen.add(j[k])
                keep.append(k)
        keep = np.array(sorted(keep), int)
        ib, j = ib[keep], j[keep]
        n_terms = (order + 1) * (order + 2) // 2
        if len(ib) < n_terms + 4:
            if order == 1:
                return None
            order = 1
            if len(ib) < 6:
                return None
        fit = fit_poly(pm[ib], xy[j], order, c_mm, s_mm, loo=False)
        model = fit.poly
        inl = fit.weights > 0.5
        blob, bead = j[inl], ib[inl]
        pred = model.apply(pm)
    if model is None:
        return None
    res = np.linalg.norm(model.apply(pm[bead]) - xy[blob], axis=1)
    # a blob merely near a bead's place (a far bead or a spurious blob over a gap of the
    # code) is off by more than the model's own scatter
    sigma = 1.4826 * float(np.median(res))
    good = res < min(0.15 * nn_px, max(5.0 * sigma, 0.05 * nn_px))
    return Labelling(blob[good], bead[good], model, mirror)
