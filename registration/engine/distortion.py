"""Evaluation of a stored distortion polynomial (CONVENTIONS.md "Distortion model").

A polynomial object is ``{"order": n, "center": [cx, cy], "scale": [s1, s2],
"coeffs_x": [...], "coeffs_y": [...]}``. With ``xn = (x - cx) / s1`` and
``yn = (y - cy) / s2`` the terms come in graded order ``1, xn, yn, xn^2, xn*yn, yn^2,
xn^3, ...`` (degree d = 0..n, powers ``xn^(d-j) * yn^j`` for j = 0..d) and
``x' = sum_k coeffs_x[k] * term_k``, ``y' = sum_k coeffs_y[k] * term_k`` (pixels).
A profile's ``forward`` maps distorted -> dewarped pixels, ``inverse`` the other way.
No Django imports.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def poly_terms(xn: np.ndarray, yn: np.ndarray, order: int) -> np.ndarray:
    """(..., n_terms) graded monomials of normalised coordinates."""
    xn = np.asarray(xn, dtype=np.float64)
    yn = np.asarray(yn, dtype=np.float64)
    return np.stack(
        [xn ** (d - j) * yn**j for d in range(order + 1) for j in range(d + 1)], axis=-1
    )


def eval_poly(poly: dict[str, Any], x: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    """Map pixel coordinates ``(x, y)`` (any equal shapes) through a stored polynomial."""
    try:
        order = int(poly["order"])
        cx, cy = (float(v) for v in poly["center"])
        s1, s2 = (float(v) for v in poly["scale"])
        ax = np.asarray(poly["coeffs_x"], dtype=np.float64).ravel()
        ay = np.asarray(poly["coeffs_y"], dtype=np.float64).ravel()
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(
            "distortion polynomial needs order, center [cx, cy], scale [s1, s2], "
            "coeffs_x and coeffs_y"
        ) from exc
    n = (order + 1) * (order + 2) // 2
    if order < 0 or ax.size != n or ay.size != n:
        raise ValueError(f"an order-{order} polynomial needs {n} coefficients per axis")
    if s1 == 0 or s2 == 0:
        raise ValueError("distortion polynomial scale must be non-zero")
    terms = poly_terms((np.asarray(x, float) - cx) / s1, (np.asarray(y, float) - cy) / s2, order)
    return terms @ ax, terms @ ay


def identity_poly(width: int, height: int, order: int = 3) -> dict:
    """The identity map as a stored polynomial (centre of the image, scale half the size)."""
    n = (order + 1) * (order + 2) // 2
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
    s1, s2 = width / 2.0, height / 2.0
    ax = np.zeros(n)
    ay = np.zeros(n)
    ax[0], ax[1] = cx, s1
    ay[0], ay[2] = cy, s2
    return {
        "order": order,
        "center": [cx, cy],
        "scale": [s1, s2],
        "coeffs_x": ax.tolist(),
        "coeffs_y": ay.tolist(),
    }
