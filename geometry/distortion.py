"""Global bivariate polynomial maps between distorted and dewarped pixels.

Follows the "Distortion model" section of CONVENTIONS.md exactly: a polynomial of total
degree ``n`` in normalised coordinates ``xn = (x - cx) / s1``, ``yn = (y - cy) / s2`` with
terms in graded order ``1, xn, yn, xn^2, xn*yn, yn^2, xn^3, ...`` (for each degree
d = 0..n the powers ``xn^(d-j) * yn^j`` for j = 0..d). All coordinates are pixels
``(u, v)`` = (column, row) with the centre of the top-left pixel at (0, 0).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def n_terms(order: int) -> int:
    """Number of terms of a bivariate polynomial of total degree ``order``."""
    return (order + 1) * (order + 2) // 2


def term_exponents(order: int) -> list[tuple[int, int]]:
    """Exponents ``(px, py)`` of ``xn^px * yn^py`` in the graded order of CONVENTIONS.md."""
    return [(d - j, j) for d in range(order + 1) for j in range(d + 1)]


def design_matrix(xn: np.ndarray, yn: np.ndarray, order: int) -> np.ndarray:
    """(N, n_terms) matrix of the graded terms evaluated at normalised coordinates."""
    xn = np.asarray(xn, dtype=np.float64).ravel()
    yn = np.asarray(yn, dtype=np.float64).ravel()
    xp = [np.ones_like(xn)]
    yp = [np.ones_like(yn)]
    for _ in range(order):
        xp.append(xp[-1] * xn)
        yp.append(yp[-1] * yn)
    cols = [xp[px] * yp[py] for px, py in term_exponents(order)]
    return np.stack(cols, axis=1)


@dataclass
class Poly2D:
    """A stored polynomial map ``(x, y) -> (x', y')`` in pixels.

    ``center`` and ``scale`` normalise the input; ``coeffs_x``/``coeffs_y`` hold one
    coefficient per graded term.
    """

    order: int
    center: tuple[float, float]
    scale: tuple[float, float]
    coeffs_x: np.ndarray
    coeffs_y: np.ndarray

    def __post_init__(self) -> None:
        self.order = int(self.order)
        if not 1 <= self.order <= 9:
            raise ValueError(f"polynomial order must be between 1 and 9, got {self.order}")
        self.center = (float(self.center[0]), float(self.center[1]))
        self.scale = (float(self.scale[0]), float(self.scale[1]))
        if self.scale[0] == 0 or self.scale[1] == 0:
            raise ValueError("polynomial scale must be non-zero")
        self.coeffs_x = np.asarray(self.coeffs_x, dtype=np.float64).ravel()
        self.coeffs_y = np.asarray(self.coeffs_y, dtype=np.float64).ravel()
        need = n_terms(self.order)
        if self.coeffs_x.size != need or self.coeffs_y.size != need:
            raise ValueError(
                f"an order-{self.order} polynomial needs {need} coefficients per axis, "
                f"got {self.coeffs_x.size} and {self.coeffs_y.size}"
            )
        if not (np.all(np.isfinite(self.coeffs_x)) and np.all(np.isfinite(self.coeffs_y))):
            raise ValueError("polynomial coefficients must be finite numbers")

    def normalise(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return (np.asarray(x, float) - self.center[0]) / self.scale[0], (
            np.asarray(y, float) - self.center[1]
        ) / self.scale[1]

    def __call__(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Evaluate at pixel coordinates; returns arrays of the input's shape."""
        x = np.asarray(x, dtype=np.float64)
        shape = x.shape
        xn, yn = self.normalise(x, y)
        a = design_matrix(xn, yn, self.order)
        return (a @ self.coeffs_x).reshape(shape), (a @ self.coeffs_y).reshape(shape)

    def apply(self, pts: np.ndarray) -> np.ndarray:
        """(N, 2) pixels -> (N, 2) pixels."""
        pts = np.asarray(pts, dtype=np.float64).reshape(-1, 2)
        xo, yo = self(pts[:, 0], pts[:, 1])
        return np.stack([xo, yo], axis=1)

    def jacobian(self, pts: np.ndarray) -> np.ndarray:
        """(N, 2, 2) derivatives d(x', y') / d(x, y) at (N, 2) pixels."""
        pts = np.asarray(pts, dtype=np.float64).reshape(-1, 2)
        xn, yn = self.normalise(pts[:, 0], pts[:, 1])
        exps = term_exponents(self.order)
        dx = np.zeros((len(xn), len(exps)))
        dy = np.zeros((len(xn), len(exps)))
        for k, (px, py) in enumerate(exps):
            if px > 0:
                dx[:, k] = px * xn ** (px - 1) * yn**py / self.scale[0]
            if py > 0:
                dy[:, k] = py * xn**px * yn ** (py - 1) / self.scale[1]
        jac = np.empty((len(xn), 2, 2))
        jac[:, 0, 0] = dx @ self.coeffs_x
        jac[:, 0, 1] = dy @ self.coeffs_x
        jac[:, 1, 0] = dx @ self.coeffs_y
        jac[:, 1, 1] = dy @ self.coeffs_y
        return jac

    def to_dict(self) -> dict:
        """The exact JSON object of CONVENTIONS.md."""
        return {
            "order": self.order,
            "center": [self.center[0], self.center[1]],
            "scale": [self.scale[0], self.scale[1]],
            "coeffs_x": [float(c) for c in self.coeffs_x],
            "coeffs_y": [float(c) for c in self.coeffs_y],
        }

    @classmethod
    def from_dict(cls, data: dict) -> Poly2D:
        if not isinstance(data, dict):
            raise ValueError("polynomial must be a JSON object")
        missing = [k for k in ("order", "center", "scale", "coeffs_x", "coeffs_y") if k not in data]
        if missing:
            raise ValueError(f"polynomial is missing field(s): {', '.join(missing)}")
        if len(data["center"]) != 2 or len(data["scale"]) != 2:
            raise ValueError("polynomial center and scale must have two numbers each")
        return cls(data["order"], data["center"], data["scale"], data["coeffs_x"], data["coeffs_y"])

    @classmethod
    def identity(cls, order: int, center, scale) -> Poly2D:
        cx = np.zeros(n_terms(order))
        cy = np.zeros(n_terms(order))
        cx[0], cx[1] = center[0], scale[0]
        cy[0], cy[2] = center[1], scale[1]
        return cls(order, center, scale, cx, cy)


@dataclass
class PolyFit:
    """Result of a robust fit: the polynomial, per-point weights (0 = rejected) and errors."""

    poly: Poly2D
    weights: np.ndarray
    residuals: np.ndarray  # (N, 2) fitted - target, pixels
    loo_residuals: np.ndarray  # (N, 2) leave-one-out residuals, pixels
    loo_rms: float  # over inliers, pixels


def _weighted_lstsq(a: np.ndarray, b: np.ndarray, w: np.ndarray) -> np.ndarray:
    sw = np.sqrt(w)[:, None]
    sol, *_ = np.linalg.lstsq(a * sw, b * sw, rcond=None)
    return sol


def fit_poly(
    src: np.ndarray,
    dst: np.ndarray,
    order: int,
    center,
    scale,
    *,
    robust: bool = True,
    iterations: int = 12,
    tukey_c: float = 4.685,
    min_sigma: float = 0.02,
    loo: bool = True,
) -> PolyFit:
    """Fit ``dst ~ P(src)`` by linear least squares with Tukey-biweight IRLS.

    ``src``/``dst`` are (N, 2) pixels. Robust scale is 1.4826 * MAD of the residual
    lengths, floored at ``min_sigma`` pixels so exact data do not reject inliers.
    """
    src = np.asarray(src, dtype=np.float64).reshape(-1, 2)
    dst = np.asarray(dst, dtype=np.float64).reshape(-1, 2)
    nt = n_terms(order)
    if len(src) < nt + 2:
        raise ValueError(f"an order-{order} fit needs at least {nt + 2} points, got {len(src)}")
    xn = (src[:, 0] - center[0]) / scale[0]
    yn = (src[:, 1] - center[1]) / scale[1]
    a = design_matrix(xn, yn, order)
    w = np.ones(len(src))
    sol = _weighted_lstsq(a, dst, w)
    if robust:
        for _ in range(iterations):
            r = np.linalg.norm(a @ sol - dst, axis=1)
            sigma = max(1.4826 * np.median(r[w > 0]) if np.any(w > 0) else 0.0, min_sigma)
            u = r / (tukey_c * sigma)
            w_new = np.where(u < 1, (1 - u**2) ** 2, 0.0)
            if np.count_nonzero(w_new) < nt + 2:
                break
            converged = np.allclose(w_new, w, atol=1e-4)
            w = w_new
            sol = _weighted_lstsq(a, dst, w)
            if converged:
                break
    fitted = a @ sol
    res = fitted - dst
    if not loo:
        poly = Poly2D(order, center, scale, sol[:, 0], sol[:, 1])
        return PolyFit(poly, w, res, res, float("nan"))
    # leave-one-out residuals via the weighted hat matrix: e_i / (1 - h_ii)
    sw = np.sqrt(w)
    aw = a * sw[:, None]
    gram_inv = np.linalg.pinv(aw.T @ aw)
    h = np.sum((a @ gram_inv) * a, axis=1) * w
    denom = np.clip(1.0 - h, 1e-6, None)
    loo = res / denom[:, None]
    inl = w > 0.5
    loo_rms = float(np.sqrt(np.mean(np.sum(loo[inl] ** 2, axis=1)))) if np.any(inl) else np.inf
    poly = Poly2D(order, center, scale, sol[:, 0], sol[:, 1])
    return PolyFit(poly, w, res, loo, loo_rms)


def fit_poly_select_order(
    src: np.ndarray,
    dst: np.ndarray,
    center,
    scale,
    orders=(3, 4, 5),
    *,
    min_points_per_term: float = 2.0,
) -> PolyFit:
    """Fit each order in ``orders`` and keep the one with the smallest leave-one-out RMS.

    Orders with fewer than ``min_points_per_term`` points per coefficient are skipped.
    A higher order must reduce the LOO error by at least 2 % to be preferred.
    """
    best: PolyFit | None = None
    n = len(np.asarray(src).reshape(-1, 2))
    for order in orders:
        if n < min_points_per_term * n_terms(order) and best is not None:
            continue
        fit = fit_poly(src, dst, order, center, scale)
        if best is None or fit.loo_rms < 0.98 * best.loo_rms:
            best = fit
    assert best is not None
    return best


def fit_inverse(
    forward: Poly2D,
    region_pts: np.ndarray,
    order: int | None = None,
) -> Poly2D:
    """Fit the dewarped -> distorted map from dense samples of ``forward``.

    ``region_pts`` are (N, 2) distorted pixels covering the valid field (a dense grid).
    Normalisation uses the same centre and scale as the forward map.
    """
    order = order or min(forward.order + 2, 7)
    region_pts = np.asarray(region_pts, dtype=np.float64).reshape(-1, 2)
    und = forward.apply(region_pts)
    if len(region_pts) > 4000:
        step = int(np.ceil(len(region_pts) / 4000))
        region_pts = region_pts[::step]
        und = und[::step]
    fit = fit_poly(und, region_pts, order, forward.center, forward.scale, robust=False, loo=False)
    return fit.poly


def invert_numerically(
    forward: Poly2D, dst: np.ndarray, guess: np.ndarray | None = None, iterations: int = 4
) -> np.ndarray:
    """Solve ``forward(p) = dst`` for p by Newton iterations; (N, 2) pixels."""
    dst = np.asarray(dst, dtype=np.float64).reshape(-1, 2)
    p = dst.copy() if guess is None else np.asarray(guess, dtype=np.float64).reshape(-1, 2).copy()
    for _ in range(iterations):
        err = forward.apply(p) - dst
        jac = forward.jacobian(p)
        p -= np.linalg.solve(jac, err[..., None])[..., 0]
    return p
