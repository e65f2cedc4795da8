"""Confidence-guided selection of correspondences.

Given per-pixel predictions (pixel ``uv``, 3-D point, predicted uncertainty), keep the
``n_keep`` most confident ones while spreading them over the image with a grid, so
PnP-RANSAC works on a few hundred good points instead of every pixel.
"""

from __future__ import annotations

import numpy as np


def select_correspondences(
    uv: np.ndarray,
    uncertainty: np.ndarray,
    image_size: tuple[int, int],
    *,
    n_keep: int = 300,
    grid: int = 8,
    max_uncertainty: float | None = None,
) -> np.ndarray:
    """Indices of the selected correspondences.

    ``uv``: ``(N, 2)`` pixel coordinates (u = column, v = row); ``uncertainty``: ``(N,)``
    (lower is better, any monotone unit); ``image_size``: ``(width, height)`` in pixels.
    The image is split into ``grid x grid`` cells; each non-empty cell first contributes
    its best ``ceil(n_keep / n_cells)`` points, then the remaining budget is filled with
    the globally best of the rest. Candidates above ``max_uncertainty`` are dropped.
    Returns indices sorted by increasing uncertainty.
    """
    uv = np.asarray(uv, dtype=np.float64).reshape(-1, 2)
    unc = np.asarray(uncertainty, dtype=np.float64).reshape(-1)
    if len(uv) != len(unc):
        raise ValueError("uv and uncertainty lengths differ")
    cand = np.flatnonzero(np.isfinite(unc) & np.isfinite(uv).all(1))
    if max_uncertainty is not None:
        cand = cand[unc[cand] <= max_uncertainty]
    if len(cand) <= n_keep:
        return cand[np.argsort(unc[cand], kind="stable")]
    w, h = image_size
    cu = np.clip((uv[cand, 0] / max(w, 1) * grid).astype(int), 0, grid - 1)
    cv_ = np.clip((uv[cand, 1] / max(h, 1) * grid).astype(int), 0, grid - 1)
    cell = cv_ * grid + cu
    order = np.lexsort((unc[cand], cell))  # by cell, then by uncertainty
    sorted_cells = cell[order]
    n_cells = len(np.unique(sorted_cells))
    per_cell = int(np.ceil(n_keep / n_cells))
    starts = np.searchsorted(sorted_cells, sorted_cells, side="left")
    rank_in_cell = np.arange(len(order)) - starts
    chosen = order[rank_in_cell < per_cell]
    if len(chosen) > n_keep:
        chosen = chosen[np.argsort(unc[cand[chosen]], kind="stable")[:n_keep]]
    elif len(chosen) < n_keep:
        rest = np.setdiff1d(np.arange(len(cand)), chosen)
        rest = rest[np.argsort(unc[cand[rest]], kind="stable")[: n_keep - len(chosen)]]
        chosen = np.concatenate([chosen, rest])
    sel = cand[chosen]
    return sel[np.argsort(unc[sel], kind="stable")]
