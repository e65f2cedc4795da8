"""Correspondence: name detected blobs with phantom bead ids.

Near layer (plane 0, a square grid with a code of large beads):
1. lattice orientation and pitch from nearest-neighbour vectors in the centre of the field;
2. a seed blob whose 8 lattice neighbours are best explained by that lattice;
3. region growing in lattice index space, predicting each new lattice point from a local
   affine fit of already-labelled neighbours (follows the smooth distortion and steps
   over hidden beads; far-layer beads sit at cell centres and are never taken);
4. the code: large/small classes of labelled blobs are matched against the phantom under
   the 8 square symmetries (rotation by 90 degrees, mirror) and all index offsets.
Far-layer matching needs the distortion map and is done in :mod:`calibrate`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from refusal import Refused

from .phantom_grid import GridInfo, square_symmetries


class CorrespondenceError(Refused):
    """The beads cannot be named reliably; the message says why."""


@dataclass
class LatticeLabels:
    blob_index: np.ndarray  # (M,) indices into the detections
    ij: np.ndarray  # (M, 2) observed lattice indices
    pitch_px: float
    theta: float  # lattice direction, radians


@dataclass
class NearMatch:
    blob_index: np.ndarray  # (M,) detection index
    bead_index: np.ndarray  # (M,) index into Phantom.beads
    symmetry: np.ndarray  # 2x2 signed permutation (observed ij -> phantom ij)
    offset: np.ndarray  # (2,)
    score: float
    runner_up: float


def build_lattice(
    xy: np.ndarray, centre: np.ndarray, pitch_guess_px: float, *, tol: float = 0.3
) -> LatticeLabels:
    """Label blobs with integer lattice indices by region growing from the centre."""
    n = len(xy)
    if n < 9:
        raise CorrespondenceError(f"only {n} bead-like blobs detected; not a phantom image")
    tree = cKDTree(xy)
    theta, pitch = _lattice_axes(xy, tree, centre, pitch_guess_px)
    a = pitch * np.array([np.cos(theta), np.sin(theta)])
    b = pitch * np.array([-np.sin(theta), np.cos(theta)])
    best = _seed_blob(xy, tree, centre, a, b, tol * pitch)
    labels = _grow_lattice(xy, tree, best, a, b, tol)
    idx = np.array(list(labels.values()))
    ij = np.array(list(labels.keys()))
    return LatticeLabels(idx, ij, pitch, theta)


def _lattice_axes(
    xy: np.ndarray, tree: cKDTree, centre: np.ndarray, pitch_guess_px: float
) -> tuple[float, float]:
    """Lattice direction (radians, modulo 90 degrees) and pitch (pixels) from blob pairs
    near the expected spacing in the centre of the field."""
    pairs = tree.query_pairs(1.3 * pitch_guess_px, output_type="ndarray")
    vec = xy[pairs[:, 1]] - xy[pairs[:, 0]]
    dist = np.linalg.norm(vec, axis=1)
    ok = (dist > 0.75 * pitch_guess_px) & (dist < 1.3 * pitch_guess_px)
    mid = 0.5 * (xy[pairs[:, 1]] + xy[pairs[:, 0]])
    rc = np.linalg.norm(mid - centre, axis=1)
    if not np.any(ok):
        raise CorrespondenceError(
            "no regular bead grid found near the expected spacing: wrong phantom or pixel spacing"
        )
    central = ok & (rc < np.percentile(rc[ok], 60))
    ang = np.arctan2(vec[central, 1], vec[central, 0])
    theta = float(np.angle(np.sum(np.exp(4j * ang))) / 4)
    # pitch from pairs aligned with the lattice axes
    dev = np.abs(np.angle(np.exp(4j * (np.arctan2(vec[:, 1], vec[:, 0]) - theta)))) / 4
    aligned = ok & (dev < np.deg2rad(8))
    if aligned.sum() < 4:
        raise CorrespondenceError("no regular bead grid found: wrong phantom or pixel spacing")
    pitch = float(np.median(dist[aligned & (rc < np.percentile(rc[aligned], 60))]))
    return theta, pitch


def _seed_blob(
    xy: np.ndarray, tree: cKDTree, centre: np.ndarray, a: np.ndarray, b: np.ndarray,
    tol_px: float,
) -> int:  # fmt: skip
    """Among blobs near the centre, the one whose 8 neighbours are best explained by the
    lattice basis (a, b)."""
    nbr = np.array([(i, j) for i in (-1, 0, 1) for j in (-1, 0, 1) if (i, j) != (0, 0)])
    order = np.argsort(np.linalg.norm(xy - centre, axis=1))[:25]
    best, best_score = None, -1
    for s in order:
        pred = xy[s] + nbr[:, :1] * a + nbr[:, 1:] * b
        d, _ = tree.query(pred)
        score = int(np.sum(d < tol_px))
        if score > best_score:
            best, best_score = s, score
    if best_score < 4:
        raise CorrespondenceError("could not find the bead grid around the image centre")
    return best


def _grow_lattice(
    xy: np.ndarray, tree: cKDTree, best: int, a: np.ndarray, b: np.ndarray, tol: float
) -> dict[tuple[int, int], int]:
    """Lattice index -> blob, grown from ``best`` at (0, 0): each new point predicted by a
    local affine fit of labelled neighbours (steps over hidden beads)."""
    labels: dict[tuple[int, int], int] = {(0, 0): int(best)}
    lab_ij = np.zeros((len(xy) + 1, 2), int)
    lab_xy = np.zeros((len(xy) + 1, 2))
    lab_xy[0] = xy[best]
    n_lab = 1
    used = {int(best)}
    failed: dict[tuple[int, int], int] = {}
    offsets = [(di, dj) for di in range(-2, 3) for dj in range(-2, 3) if (di, dj) != (0, 0)]
    grew = True
    while grew:
        grew = False
        cands = set()
        for i, j in lab_ij[:n_lab]:
            for di, dj in offsets:
                key = (int(i + di), int(j + dj))
                if key not in labels and failed.get(key, 0) < n_lab:
                    cands.add(key)
        if not cands:
            break
        ktree = cKDTree(lab_ij[:n_lab])
        cand_list = sorted(cands, key=lambda k: ktree.query(k)[0])
        for key in cand_list:
            if key in labels:
                continue
            kij = lab_ij[:n_lab]
            near = np.flatnonzero(np.abs(kij - np.array(key)).max(axis=1) <= 2)
            if len(near) == 0:
                continue
            pred, local_pitch = _predict(
                np.array(key, float), kij[near].astype(float), lab_xy[near], a, b
            )
            d, k = tree.query(pred)
            if d < tol * local_pitch and int(k) not in used:
                labels[key] = int(k)
                lab_ij[n_lab] = key
                lab_xy[n_lab] = xy[k]
                n_lab += 1
                used.add(int(k))
                grew = True
            else:
                failed[key] = n_lab
    return labels


def _local_affine(kij: np.ndarray, kxy: np.ndarray):
    """Affine lattice index -> pixel from labelled neighbours, or None when degenerate."""
    if len(kij) < 4:
        return None
    design = np.column_stack([kij, np.ones(len(kij))])
    gram = design.T @ design
    if np.linalg.cond(gram) > 1e6:
        return None
    return np.linalg.solve(gram, design.T @ kxy)


def _predict(key, kij, kxy, a, b):
    """Predicted pixel of lattice point ``key`` and the local pitch (pixels)."""
    coef = _local_affine(kij, kxy)
    if coef is not None:
        return np.array([key[0], key[1], 1.0]) @ coef, float(np.sqrt(abs(np.linalg.det(coef[:2]))))
    j = np.argmin(np.abs(kij - key).sum(axis=1))
    dk = key - kij[j]
    return kxy[j] + dk[0] * a + dk[1] * b, float(np.linalg.norm(a))


def classify_large(integral: np.ndarray, size_ratio: float) -> np.ndarray:
    """Large/small class from integrated signal (proportional to diameter cubed).

    The small class is the majority; the threshold sits half way (in log) to the
    expected large-bead signal.
    """
    logi = np.log(np.clip(integral, 1e-12, None))
    base = np.median(logi)
    thr = base + 0.5 * 3 * np.log(size_ratio)
    return logi > thr


def match_code(lat: LatticeLabels, large_obs: np.ndarray, grid: GridInfo) -> NearMatch:
    """Find the symmetry and offset mapping observed lattice indices onto the phantom grid."""
    pkeys = {tuple(v): k for k, v in enumerate(grid.ij)}
    p_large_ij = grid.ij[grid.large]
    o_large_ij = lat.ij[large_obs]
    n_obs = len(lat.ij)
    results = []
    for m in square_symmetries():
        mapped_all = lat.ij @ m.T
        cands = [(0, 0)]
        if len(o_large_ij) and len(p_large_ij):
            mapped_large = o_large_ij @ m.T
            off = (p_large_ij[None, :, :] - mapped_large[:, None, :]).reshape(-1, 2)
            uniq, counts = np.unique(off, axis=0, return_counts=True)
            top = np.argsort(counts)[::-1][:6]
            cands = [tuple(int(v) for v in uniq[t]) for t in top]
        for off in cands:
            mapped = mapped_all + np.array(off)
            score = 0.0
            for q, is_large in zip(map(tuple, mapped), large_obs, strict=True):
                k = pkeys.get(q)
                if k is None:
                    score -= 1.0
                elif grid.large[k] == is_large:
                    score += 1.0 + 4.0 * is_large
                else:
                    score -= 2.0
            results.append((score, m, np.array(off)))
    results.sort(key=lambda r: -r[0])
    best = results[0]
    second = results[1][0] if len(results) > 1 else -np.inf
    n_large = int(large_obs.sum())
    max_score = n_obs + 4.0 * n_large
    if best[0] < 0.6 * max_score or n_large < 3:
        raise CorrespondenceError(
            f"the bead pattern does not match this phantom ({n_obs} grid beads, "
            f"{n_large} large; best code agreement {max(best[0], 0) / max(max_score, 1):.0%})"
        )
    if best[0] - second < max(6.0, 0.1 * max_score):
        raise CorrespondenceError(
            "the phantom orientation is ambiguous: too few coded (large) beads are visible"
        )
    m, off = best[1], best[2]
    mapped = lat.ij @ m.T + off
    blob_idx, bead_idx = [], []
    for q, bi in zip(map(tuple, mapped), lat.blob_index, strict=True):
        k = pkeys.get(q)
        if k is not None:
            blob_idx.append(int(bi))
            bead_idx.append(int(grid.indices[k]))
    return NearMatch(np.array(blob_idx), np.array(bead_idx), m, off, float(best[0]), float(second))
