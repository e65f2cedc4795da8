"""The depth profile search settles a depth error beyond the bare-ray search's reach."""

from __future__ import annotations

import numpy as np
import pytest

from registration.engine.depth_search import depth_profile_search
from tests.registration.synthetic_view import synthetic_view


@pytest.fixture(scope="module")
def scene():
    return synthetic_view()


def _depth_of_centre(T: np.ndarray) -> float:
    return float(T[2, 3])  # camera z of the world origin (the phantom's centre)


@pytest.mark.parametrize("offset_mm", [-14.0, 12.0])
def test_a_far_depth_error_is_brought_back(scene, offset_mm):
    """12-14 mm off along the camera axis (beyond +-5 mm of the bare-ray search, and past
    the first window so that it has to move on): back to within 2 mm of the true depth."""
    cam, renderer, T_true, img = scene
    T0 = T_true.copy()
    T0[2, 3] += offset_mm
    ds = depth_profile_search(renderer, img, cam.K, T0, np.zeros(3))
    err_before = abs(_depth_of_centre(T0) - _depth_of_centre(T_true))
    err_after = abs(_depth_of_centre(ds.T_cam_from_world) - _depth_of_centre(T_true))
    assert err_after < 2.0, (err_before, err_after, ds.moved_mm)
    assert ds.similarity > ds.similarity_before
    assert np.allclose(ds.T_cam_from_world[:3, :3] @ ds.T_cam_from_world[:3, :3].T, np.eye(3),
                       atol=1e-9)


def test_the_true_pose_stays(scene):
    cam, renderer, T_true, img = scene
    ds = depth_profile_search(renderer, img, cam.K, T_true, np.zeros(3))
    assert abs(_depth_of_centre(ds.T_cam_from_world) - _depth_of_centre(T_true)) < 1.0
    assert ds.similarity >= ds.similarity_before
