"""A pose that puts the CT bone seen in the X-ray behind the detector (or against the
source) is rejected; the true pose of a simulated shot passes."""

from __future__ import annotations

import numpy as np
import pytest

from geometry.camera import Camera
from geometry.carm import carm_pose
from registration.engine.drr import DrrRenderer
from registration.engine.pipeline_checks import bone_depth_in_view
from registration.engine.quality import QualityError, check_bone_depth
from simulation.phantom_ct import synthetic_bone_ct

SDD = 1000.0


@pytest.fixture(scope="module")
def scene():
    vol = synthetic_bone_ct(40, 5.0)
    cam = Camera.from_geometry(80, 80, SDD, 3.2, 3.2)
    return vol, cam, DrrRenderer(vol, bone_threshold_hu=200.0)


def test_bone_points_are_the_bone_voxels_in_lps(scene):
    vol, _cam, renderer = scene
    pts = renderer.bone_points(max_points=10**9)
    kji = np.argwhere(np.asarray(vol.array) >= 200.0)
    assert len(pts) == len(kji)
    expected = vol.voxel_to_world(kji[:, ::-1].astype(float))
    np.testing.assert_allclose(np.sort(pts, 0), np.sort(expected, 0), atol=1e-9)
    assert renderer.bone_points() is renderer.bone_points()  # computed once per subset
    assert len(renderer.bone_points(max_points=100)) == 100


def test_depth_range_of_the_bone_in_view(scene):
    _vol, cam, renderer = scene
    T = carm_pose(0.0, 0.0, 600.0, np.zeros(3))
    valid = np.ones((cam.height, cam.width), bool)
    near, far = bone_depth_in_view(renderer.bone_points(), T, cam.K, valid)
    half = float(np.abs(renderer.bone_points()).max())
    assert 600.0 - half - 1e-6 <= near < 600.0 < far <= 600.0 + half + 1e-6
    assert bone_depth_in_view(renderer.bone_points(), T, cam.K, np.zeros_like(valid)) is None


@pytest.mark.parametrize("sid, passes", [(600.0, True), (985.0, False), (60.0, False)])
def test_bone_beyond_the_detector_or_at_the_source_is_rejected(scene, sid, passes):
    _vol, cam, renderer = scene
    T = carm_pose(20.0, 10.0, sid, np.zeros(3))
    rng = bone_depth_in_view(renderer.bone_points(), T, cam.K,
                             np.ones((cam.height, cam.width), bool))
    if passes:
        check_bone_depth(rng, SDD)
    else:
        with pytest.raises(QualityError, match="between source and detector"):
            check_bone_depth(rng, SDD)


def test_no_bone_in_view_is_left_to_the_other_checks():
    check_bone_depth(None, SDD)
