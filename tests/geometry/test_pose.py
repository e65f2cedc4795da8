"""Poses: C-arm angles round trip, SE(3) exp/log, validation, perturbation, distances."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from geometry.camera import Camera, project
from geometry.carm import carm_angles_from_pose, carm_pose
from geometry.rigid import (
    perturb_pose,
    pose_distance,
    rotation_angle_deg,
    se3_exp,
    se3_log,
    target_error_mm,
    validate_rigid,
)


def test_ap_view_orientation():
    T = carm_pose(0.0, 0.0, 700.0, [0.0, 0.0, 0.0])
    cam = Camera.from_geometry(101, 101, 1000.0, 1.0, 1.0)
    uv = project(np.array([[0, 0, 0], [10, 0, 0], [0, 0, 10], [0, -10, 0]]), cam.K, T)
    assert uv[0] == pytest.approx([50.0, 50.0])
    assert uv[1][0] < 50.0  # patient left (+x) appears on the image left
    assert uv[2][1] < 50.0  # superior toward the top of the image
    # the source is posterior (+y) of the isocentre
    src = -T[:3, :3].T @ T[:3, 3]
    np.testing.assert_allclose(src, [0.0, 700.0, 0.0], atol=1e-9)


def test_lao_moves_detector_to_patient_left():
    T = carm_pose(90.0, 0.0, 700.0, [0.0, 0.0, 0.0])
    view = T[2, :3]  # camera +z in world
    np.testing.assert_allclose(view, [1.0, 0.0, 0.0], atol=1e-12)
    T = carm_pose(0.0, 30.0, 700.0, [0.0, 0.0, 0.0])
    assert T[2, 2] == pytest.approx(math.sin(math.radians(30.0)))


def test_carm_angles_round_trip():
    rng = np.random.default_rng(3)
    for _ in range(50):
        lao, cra, ip = rng.uniform(-120, 120), rng.uniform(-60, 60), rng.uniform(-170, 170)
        iso = rng.uniform(-100, 100, 3)
        T = carm_pose(lao, cra, 650.0, iso, in_plane_deg=ip)
        validate_rigid(T)
        a = carm_angles_from_pose(T, 650.0)
        assert a["lao_deg"] == pytest.approx(lao, abs=1e-9)
        assert a["cranial_deg"] == pytest.approx(cra, abs=1e-9)
        assert a["in_plane_deg"] == pytest.approx(ip, abs=1e-9)
        np.testing.assert_allclose(a["isocenter_lps"], iso, atol=1e-9)


def test_table_offset_shifts_isocentre():
    T0 = carm_pose(20.0, 10.0, 650.0, [5.0, 6.0, 7.0])
    T1 = carm_pose(20.0, 10.0, 650.0, [15.0, 6.0, 27.0], table_offset_mm=(10.0, 0.0, 20.0))
    np.testing.assert_allclose(T0, T1, atol=1e-9)


def test_se3_exp_log_round_trip_numpy_and_torch():
    rng = np.random.default_rng(4)
    for scale in (1e-8, 1e-3, 0.5, 2.5):
        xi = np.concatenate([rng.normal(size=3), rng.normal(size=3) * 50])
        xi[:3] *= scale / np.linalg.norm(xi[:3])
        T = se3_exp(xi)
        validate_rigid(T)
        np.testing.assert_allclose(se3_log(T), xi, atol=1e-9)
        xt = torch.as_tensor(np.stack([xi, -xi]))
        Tt = se3_exp(xt)
        np.testing.assert_allclose(Tt[0].numpy(), T, atol=1e-12)
        np.testing.assert_allclose(se3_log(Tt).numpy(), np.stack([xi, -xi]), atol=1e-7)


def test_se3_log_near_pi():
    xi = np.array([math.pi - 1e-6, 0.0, 0.0, 1.0, 2.0, 3.0])
    np.testing.assert_allclose(se3_exp(se3_log(se3_exp(xi))), se3_exp(xi), atol=1e-6)


@pytest.mark.parametrize(
    "bad, message",
    [
        (np.eye(3), "4x4"),
        (np.full((4, 4), np.nan), "NaN"),
        (np.diag([1.0, 1.0, -1.0, 1.0]), "determinant"),
        (np.diag([2.0, 1.0, 1.0, 1.0]), "orthonormal"),
        (np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 1, 1.0]]), "bottom row"),
    ],
)
def test_validate_rigid_rejects(bad, message):
    with pytest.raises(ValueError, match=message):
        validate_rigid(bad)


def test_perturb_pose_has_requested_magnitudes():
    rng = np.random.default_rng(5)
    T = carm_pose(10.0, 0.0, 600.0, [0.0, 0.0, 0.0])
    c = np.array([5.0, -3.0, 20.0])
    for rot, trans in ((0.0, 7.0), (4.0, 0.0), (10.0, 15.0)):
        P = perturb_pose(T, rot, trans, rng, center_world=c)
        validate_rigid(P)
        assert rotation_angle_deg(T, P) == pytest.approx(rot, abs=1e-6)
        # the centre point moves by exactly the translation
        err = target_error_mm(c[None], P, T)
        assert err[0] == pytest.approx(trans, abs=1e-9)


def test_pose_distance_and_target_error():
    T = carm_pose(0.0, 0.0, 600.0, [0.0, 0.0, 0.0])
    shift = np.eye(4)
    shift[:3, 3] = [3.0, 4.0, 0.0]
    rot, trans = pose_distance(T, shift @ T)
    assert rot == pytest.approx(0.0, abs=1e-9)
    assert trans == pytest.approx(5.0)
    pts = np.random.default_rng(6).normal(size=(10, 3))
    np.testing.assert_allclose(target_error_mm(pts, shift @ T, T), 5.0)
