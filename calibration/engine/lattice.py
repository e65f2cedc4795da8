"""Integer lattice coordinates for points on a distorted square or hexagonal lattice.

Used for dewarping grid plates (every marker) and for the near layer of two-layer phantoms.
The lattice is found where distortion is smallest, around a given centre: pitch and
direction from nearest-neighbour vectors of the central points, then region growing in
index space, each new index predicted by a local affine fit of already-indexed
neighbours (follows the smooth distortion, steps over missing markers).

Index convention: point ``(i, j)`` sits near ``origin + i * a + j * b`` where ``a`` is the
lattice direction found and ``b`` is ``a`` turned by +90 degrees (square) or +60 degrees
(hex) in the image's own axes (x right, y down), so index -> position is a proper
(unmirrored) map for the nominal lattice bases of :class:`~.phantom.GridPlate`.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from refusal import Refused


class LatticeError(Refused):
    """No lattice could be indexed; the message says why."""


@dataclass
class LatticeIndex:
    point_index: np.ndarray  # (M,) indices into the input points
    ij: np.ndarray  # (M, 2) integer lattice coordinates
    pitch: float  # observed nearest-neighbour distance near the centre (input units)
    theta: float  # direction of basis vector a, radians
    a: np.ndarray  # (2,) basis vectors near the centre (input units)
    b: np.ndarray
    seed: int  # index of the point labelled (0, 0)


def lattice_turn(kind: str) -> float:
    return np.pi / 3 if kind == "hex" else np.pi / 2


def estimate_lattice(
    xy: np.ndarray, centre: np.ndarray, pitch_guess: float, kind: str, *, n_central: int = 300
) -> tuple[float, float]:
    """(pitch, theta) of the lattice from the points nearest ``centre``."""
    xy = np.asarray(xy, dtype=np.float64)
    order = np.argsort(np.linalg.norm(xy - centre, axis=1))[: max(n_central, 12)]
    sub = xy[order]
    tree = cKDTree(xy)
    k = min(7, len(xy))
    dist, nb = tree.query(sub, k=k)
    dist, nb = dist[:, 1:], nb[:, 1:]
    ok = (dist > 0.6 * pitch_guess) & (dist < 1.5 * pitch_guess)
    if ok.sum() < 6:
        raise LatticeError(
            "no regular marker lattice found near the expected spacing: wrong plate or pixel spacing"
        )
    # pitch: the nearest neighbour of each central point (robust median)
    nn = np.where(ok, dist, np.inf).min(axis=1)
    pitch = float(np.median(nn[np.isfinite(nn)]))
    vec = xy[nb[ok]] - np.repeat(sub, k - 1, axis=0).reshape(len(sub), k - 1, 2)[ok]
    dl = np.linalg.norm(vec, axis=1)
    sel = np.abs(dl - pitch) < 0.2 * pitch
    if sel.sum() < 6:
        raise LatticeError("no regular marker lattice found: wrong plate or pixel spacing")
    n_fold = 6 if kind == "hex" else 4
    ang = np.arctan2(vec[sel, 1], vec[sel, 0])
    theta = float(np.angle(np.sum(np.exp(1j * n_fold * ang))) / n_fold)
    coherence = abs(np.mean(np.exp(1j * n_fold * ang)))
    if coherence < 0.5:
        raise LatticeError(
            f"the markers do not form a {kind} lattice near the field centre "
            f"(direction coherence {coherence:.2f}): wrong plate type?"
        )
    return pitch, theta


def index_lattice(
    xy: np.ndarray,
    centre,
    pitch_guess: float,
    kind: str = "square",
    *,
    tol: float = 0.3,
    reach: int = 2,
) -> LatticeIndex:
    """Index points on a distorted ``kind`` lattice by region growing from ``centre``.

    ``tol`` is the acceptance radius as a fraction of the local pitch; ``reach`` the
    largest index step bridged over missing points.
    """
    xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    n = len(xy)
    if n < 9:
        raise LatticeError(f"only {n} marker-like blobs detected; not a lattice")
    centre = np.asarray(centre, dtype=np.float64)
    pitch, theta = estimate_lattice(xy, centre, pitch_guess, kind)
    turn = lattice_turn(kind)
    a = pitch * np.array([np.cos(theta), np.sin(theta)])
    b = pitch * np.array([np.cos(theta + turn), np.sin(theta + turn)])
    tree = cKDTree(xy)
    basis = np.column_stack([a, b])

    # seed: among points near the centre, the one whose neighbours are best explained
    near = np.argsort(np.linalg.norm(xy - centre, axis=1))[:25]
    nbr = np.array([(1, 0), (-1, 0), (0, 1), (0, -1), (1, 1), (-1, -1), (1, -1), (-1, 1)], float)
    best, best_score = None, -1
    for s in near:
        pred = xy[s] + nbr @ basis.T
        d, _ = tree.query(pred)
        score = int(np.sum(d < tol * pitch))
        if score > best_score:
            best, best_score = int(s), score
    if best_score < 3:
        raise LatticeError("could not find the marker lattice around the field centre")

    labels: dict[tuple[int, int], int] = {(0, 0): best}
    pos: dict[tuple[int, int], np.ndarray] = {(0, 0): xy[best]}
    used = np.zeros(n, bool)
    used[best] = True
    tried: dict[tuple[int, int], int] = {}
    steps = [
        (di, dj)
        for di in range(-reach, reach + 1)
        for dj in range(-reach, reach + 1)
        if (di, dj) != (0, 0)
    ]
    local = [(di, dj) for di in range(-2, 3) for dj in range(-2, 3) if (di, dj) != (0, 0)]
    heap: list[tuple[float, tuple[int, int]]] = []

    def push_around(key):
        for di, dj in steps:
            k2 = (key[0] + di, key[1] + dj)
            if k2 not in labels:
                heapq.heappush(heap, (float(np.hypot(*(np.array(k2) @ basis.T))), k2))

    push_around((0, 0))
    while heap:
        _, key = heapq.heappop(heap)
        if key in labels:
            continue
        kij, kxy = [], []
        for di, dj in local:
            k2 = (key[0] + di, key[1] + dj)
            p = pos.get(k2)
            if p is not None:
                kij.append(k2)
                kxy.append(p)
        if tried.get(key, -1) >= len(kij) or not kij:
            continue
        tried[key] = len(kij)
        kij_a = np.array(kij, float)
        kxy_a = np.array(kxy)
        pred, local_pitch = _predict(np.array(key, float), kij_a, kxy_a, basis, pitch)
        d, k = tree.query(pred)
        if d < tol * local_pitch and not used[k]:
            labels[key] = int(k)
            pos[key] = xy[k]
            used[k] = True
            push_around(key)
    idx = np.fromiter(labels.values(), dtype=int, count=len(labels))
    ij = np.array(list(labels.keys()), dtype=int).reshape(-1, 2)
    return LatticeIndex(idx, ij, pitch, theta, a, b, best)


def _predict(key, kij, kxy, basis, pitch):
    """Predicted position of index ``key`` and the local pitch, from labelled neighbours."""
    if len(kij) >= 3:
        design = np.column_stack([kij, np.ones(len(kij))])
        gram = design.T @ design
        if np.linalg.cond(gram) < 1e6:
            coef = np.linalg.solve(gram, design.T @ kxy)
            area = abs(np.linalg.det(coef[:2].T)) / abs(np.linalg.det(basis))
            return np.array([key[0], key[1], 1.0]) @ coef, pitch * float(np.sqrt(area))
    j = int(np.argmin(np.abs(kij - key).sum(axis=1)))
    return kxy[j] + basis @ (key - kij[j]), pitch


def check_indexing(
    xy: np.ndarray, ij: np.ndarray, order: int = 4, *, limit: float = 0.25, pitch: float = 1.0
) -> np.ndarray:
    """Boolean mask of indexed points consistent with a smooth index -> position map
    (robust polynomial in the indices; a mislabelled point is off by a sizeable fraction
    of the pitch)."""
    from geometry.distortion import fit_poly

    ij = np.asarray(ij, dtype=np.float64)
    if len(ij) < 40:
        return np.ones(len(ij), bool)
    c = ij.mean(axis=0)
    s = np.maximum(np.abs(ij - c).max(axis=0), 1.0)
    ordr = order if len(ij) > 6 * (order + 1) * (order + 2) // 2 else 2
    fit = fit_poly(ij, xy, ordr, c, s, loo=False)
    r = np.linalg.norm(fit.residuals, axis=1)
    return r < limit * pitch


def lattice_fit_rms(
    ij: np.ndarray, xy: np.ndarray, basis: np.ndarray, *, free_scale: bool = True
) -> tuple[float, np.ndarray]:
    """RMS distance (pixels) of points ``xy`` from the best perfect lattice.

    The lattice is ``basis @ ij`` (basis in pixels, columns) moved by the best rotation and
    translation (and uniform scale when ``free_scale``). Returns (rms, residuals (N, 2)).
    """
    ij = np.asarray(ij, dtype=np.float64).reshape(-1, 2)
    xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    ideal = ij @ np.asarray(basis, dtype=np.float64).T
    zi = ideal[:, 0] + 1j * ideal[:, 1]
    zo = xy[:, 0] + 1j * xy[:, 1]
    mi, mo = zi.mean(), zo.mean()
    a = np.vdot(zi - mi, zo - mo) / np.vdot(zi - mi, zi - mi)
    if not free_scale:
        a = a / abs(a)
    fit = a * (zi - mi) + mo
    res = np.stack([(zo - fit).real, (zo - fit).imag], axis=1)
    return float(np.sqrt(np.mean(np.sum(res**2, axis=1)))), res
