"""Distortion polynomial: graded term order of CONVENTIONS.md, fitting, inverse consistency."""

import numpy as np
import pytest

from geometry.distortion import (
    Poly2D,
    design_matrix,
    fit_inverse,
    fit_poly,
    fit_poly_select_order,
    invert_numerically,
    n_terms,
    term_exponents,
)


def test_graded_term_order_matches_conventions():
    assert term_exponents(3) == [
        (0, 0), (1, 0), (0, 1), (2, 0), (1, 1), (0, 2), (3, 0), (2, 1), (1, 2), (0, 3)
    ]  # fmt: skip
    assert term_exponents(4)[10:] == [(4, 0), (3, 1), (2, 2), (1, 3), (0, 4)]
    assert [n_terms(n) for n in (3, 4, 5)] == [10, 15, 21]


def test_evaluation_by_hand():
    # x' = 2 + 3*xn + 5*xn*yn + 7*yn^3 ; y' = -1 + 0.5*yn^2 + 4*xn^2*yn
    cx = np.zeros(10)
    cy = np.zeros(10)
    cx[0], cx[1], cx[4], cx[9] = 2, 3, 5, 7
    cy[0], cy[5], cy[7] = -1, 0.5, 4
    p = Poly2D(3, (100.0, 50.0), (10.0, 20.0), cx, cy)
    x, y = 130.0, 10.0
    xn, yn = (x - 100) / 10, (y - 50) / 20
    xo, yo = p(np.array([x]), np.array([y]))
    assert xo[0] == pytest.approx(2 + 3 * xn + 5 * xn * yn + 7 * yn**3, abs=1e-12)
    assert yo[0] == pytest.approx(-1 + 0.5 * yn**2 + 4 * xn**2 * yn, abs=1e-12)


def test_dict_round_trip_and_validation():
    p = Poly2D.identity(3, (255.5, 255.5), (255.5, 255.5))
    d = p.to_dict()
    assert set(d) == {"order", "center", "scale", "coeffs_x", "coeffs_y"}
    q = Poly2D.from_dict(d)
    pts = np.array([[0.0, 0.0], [511.0, 300.0]])
    np.testing.assert_allclose(q.apply(pts), pts, atol=1e-9)
    with pytest.raises(ValueError, match="needs 10 coefficients"):
        Poly2D.from_dict({**d, "coeffs_x": d["coeffs_x"][:9]})
    with pytest.raises(ValueError, match="missing"):
        Poly2D.from_dict({"order": 3})


def _random_poly(order, rng, amp=3.0):
    cx = rng.normal(scale=amp, size=n_terms(order))
    cy = rng.normal(scale=amp, size=n_terms(order))
    cx[0] += 256
    cy[0] += 256
    cx[1] += 256
    cy[2] += 256
    return Poly2D(order, (255.5, 255.5), (255.5, 255.5), cx, cy)


def test_fit_recovers_known_polynomial_with_outliers():
    rng = np.random.default_rng(1)
    truth = _random_poly(4, rng)
    src = rng.uniform(20, 490, size=(300, 2))
    dst = truth.apply(src)
    dst[:15] += rng.normal(scale=8.0, size=(15, 2))  # gross outliers
    fit = fit_poly(src, dst, 4, truth.center, truth.scale)
    np.testing.assert_allclose(fit.poly.coeffs_x, truth.coeffs_x, atol=1e-6)
    np.testing.assert_allclose(fit.poly.coeffs_y, truth.coeffs_y, atol=1e-6)
    assert np.all(fit.weights[:15] < 0.5)
    assert np.all(fit.weights[15:] > 0.9)


def test_order_selection_by_leave_one_out():
    rng = np.random.default_rng(2)
    truth = _random_poly(5, rng, amp=2.0)
    src = rng.uniform(20, 490, size=(400, 2))
    dst = truth.apply(src) + rng.normal(scale=0.02, size=(400, 2))
    fit = fit_poly_select_order(src, dst, truth.center, truth.scale)
    assert fit.poly.order == 5
    assert fit.loo_rms < 0.04
    truth3 = _random_poly(3, rng, amp=2.0)
    fit3 = fit_poly_select_order(src, truth3.apply(src) + rng.normal(scale=0.02, size=(400, 2)),
                                 truth3.center, truth3.scale)  # fmt: skip
    assert fit3.poly.order == 3


def test_inverse_map_consistency():
    rng = np.random.default_rng(3)
    fwd = _random_poly(3, rng, amp=4.0)
    grid = np.stack(np.meshgrid(np.arange(10, 500, 8.0), np.arange(10, 500, 8.0)), -1).reshape(
        -1, 2
    )
    inv = fit_inverse(fwd, grid)
    inner = rng.uniform(60, 450, size=(200, 2))
    back = inv.apply(fwd.apply(inner))
    assert np.max(np.linalg.norm(back - inner, axis=1)) < 0.05
    exact = invert_numerically(fwd, fwd.apply(inner))
    assert np.max(np.linalg.norm(exact - inner, axis=1)) < 1e-8


def test_jacobian_matches_finite_differences():
    rng = np.random.default_rng(4)
    p = _random_poly(5, rng)
    pts = rng.uniform(50, 450, size=(10, 2))
    jac = p.jacobian(pts)
    eps = 1e-4
    num_x = (p.apply(pts + [eps, 0]) - p.apply(pts - [eps, 0])) / (2 * eps)
    num_y = (p.apply(pts + [0, eps]) - p.apply(pts - [0, eps])) / (2 * eps)
    np.testing.assert_allclose(jac[:, :, 0], num_x, atol=1e-5)
    np.testing.assert_allclose(jac[:, :, 1], num_y, atol=1e-5)


def test_design_matrix_shape():
    a = design_matrix(np.array([0.5, -1.0]), np.array([2.0, 0.25]), 5)
    assert a.shape == (2, 21)
    assert a[0, 20] == pytest.approx(2.0**5)
