"""The one tolerance table of the geometry tests, per dtype (as kornia keeps one): absolute
and relative tolerances for comparing results computed in that precision."""

from __future__ import annotations

import numpy as np
import torch

TOLERANCES: dict[object, dict[str, float]] = {
    np.float64: {"atol": 1e-9, "rtol": 1e-9},
    torch.float64: {"atol": 1e-9, "rtol": 1e-9},
    np.float32: {"atol": 1e-4, "rtol": 1e-5},
    torch.float32: {"atol": 1e-4, "rtol": 1e-5},
}


def tol(dtype: object = np.float64) -> dict[str, float]:
    """``{"atol": .., "rtol": ..}`` for ``dtype`` (a NumPy or torch dtype)."""
    key = np.dtype(dtype).type if not isinstance(dtype, torch.dtype) else dtype
    return TOLERANCES[key]
