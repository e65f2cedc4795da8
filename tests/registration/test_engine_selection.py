"""Confidence-guided selection keeps the most confident points, spread over the image."""

from __future__ import annotations

import numpy as np

from registration.engine.selection import select_correspondences


def test_selection_keeps_best_and_spreads():
    rng = np.random.default_rng(0)
    n = 5000
    uv = rng.uniform(0, 128, (n, 2))
    unc = rng.uniform(0, 1, n)
    # the left half is much more confident: a pure top-k would take only left-half points
    unc[uv[:, 0] < 64] *= 0.01
    sel = select_correspondences(uv, unc, (128, 128), n_keep=256, grid=4)
    assert len(sel) == 256
    assert len(np.unique(sel)) == 256
    cells = set(map(tuple, (uv[sel] // 32).astype(int)))
    assert len(cells) == 16  # every grid cell represented
    # inside each cell the chosen ones are the best of that cell
    for cu, cv in cells:
        in_cell = np.flatnonzero(((uv // 32).astype(int) == (cu, cv)).all(1))
        chosen = np.intersect1d(in_cell, sel)
        worst_chosen = unc[chosen].max()
        better_unchosen = np.setdiff1d(in_cell, chosen)
        assert (unc[better_unchosen] >= worst_chosen).all()
    # sorted by increasing uncertainty
    assert np.all(np.diff(unc[sel]) >= 0)


def test_selection_returns_all_when_few_and_drops_uncertain():
    uv = np.array([[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]])
    unc = np.array([0.5, 0.1, np.nan])
    sel = select_correspondences(uv, unc, (8, 8), n_keep=10)
    assert list(sel) == [1, 0]
    sel = select_correspondences(uv, unc, (8, 8), n_keep=10, max_uncertainty=0.2)
    assert list(sel) == [1]
