"""Summary statistics and number formatting shared by the ``bench_calibration`` families."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np


def stats(values: Iterable[float | None]) -> dict:
    """``n``, ``mean``, 95th percentile ``p95`` and ``max`` of the finite values (None when
    there are none); same unit as the values."""
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], dtype=np.float64)
    if v.size == 0:
        return {"n": 0, "mean": None, "p95": None, "max": None}
    return {
        "n": int(v.size),
        "mean": float(v.mean()),
        "p95": float(np.percentile(v, 95)),
        "max": float(v.max()),
    }


def fmt(x: float | None, width: int = 0) -> str:
    """``x`` with three decimals, right-aligned in ``width``; ``n/a`` for None."""
    return f"{x:{width}.3f}" if x is not None else f"{'n/a':>{width}s}"
