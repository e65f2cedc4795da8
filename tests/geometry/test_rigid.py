"""Rigid transforms: one validator with one tolerance, inverse, composition and
re-orthonormalisation."""

from __future__ import annotations

import numpy as np
import pytest

from geometry.rigid import (
    RIGID_TOL,
    TransformError,
    compose,
    invert_rigid,
    orthonormalised,
    se3_exp,
    validate_rigid,
)
from tests.geometry.tolerances import tol


def _random_rigid(rng: np.random.Generator) -> np.ndarray:
    return se3_exp(np.concatenate([rng.normal(0, 1.0, 3), rng.normal(0, 50.0, 3)]))


def test_inverse_and_composition_round_trip():
    rng = np.random.default_rng(7)
    for _ in range(10):
        T_a_from_b, T_b_from_c = _random_rigid(rng), _random_rigid(rng)
        np.testing.assert_allclose(compose(T_a_from_b, invert_rigid(T_a_from_b)), np.eye(4), **tol())
        T_a_from_c = compose(T_a_from_b, T_b_from_c)
        np.testing.assert_allclose(
            invert_rigid(T_a_from_c), compose(invert_rigid(T_b_from_c), invert_rigid(T_a_from_b)),
            **tol(),
        )


def test_one_tolerance_decides_what_is_rigid():
    T = np.eye(4)
    T[0, 0] = 1.0 + 0.25 * RIGID_TOL  # |R^T R - I| = 0.5 RIGID_TOL
    validate_rigid(T, "T_cam_from_world")
    T[0, 0] = 1.0 + 3.0 * RIGID_TOL  # 6 RIGID_TOL
    with pytest.raises(TransformError, match="T_cam_from_world is not rigid"):
        validate_rigid(T, "T_cam_from_world")


@pytest.mark.parametrize(
    "matrix, words",
    [
        (np.eye(3), "4x4"),
        (np.diag([1.0, 1.0, -1.0, 1.0]), "determinant"),
        (np.full((4, 4), np.nan), "NaN"),
        ([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 1, 1]], "last row"),
        ("not a matrix", "matrix of numbers"),
    ],
)
def test_refusals_name_the_transform_and_the_problem(matrix, words):
    with pytest.raises(TransformError) as err:
        validate_rigid(matrix, "T_tracker_from_tool")
    assert "T_tracker_from_tool" in str(err.value) and words in str(err.value)


def test_orthonormalised_returns_the_nearest_rotation_and_keeps_translation():
    rng = np.random.default_rng(3)
    T = _random_rigid(rng)
    noisy = T.copy()
    noisy[:3, :3] += rng.normal(0, 1e-3, (3, 3))
    fixed = orthonormalised(noisy)
    validate_rigid(fixed)
    np.testing.assert_allclose(fixed[:3, 3], T[:3, 3], **tol())
    assert np.abs(fixed[:3, :3] - T[:3, :3]).max() < 5e-3
