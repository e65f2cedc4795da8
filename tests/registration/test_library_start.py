"""The DRR library start (training-free mode): retrieval recovers a known pose of a tiny
CT to within its grid step (also from a close-up window), register() without a model or
an initial pose registers from it and names the start, and register_xray runs without
--model end to end."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from django.core.management import call_command

from geometry.camera import Camera, project
from geometry.carm import carm_pose
from geometry.rigid import rotation_angle_deg, target_error_mm
from registration.engine.dataset import window_camera, window_valid_mask
from registration.engine.drr import DrrRenderer
from registration.engine.library import LibraryGrid, library_for, retrieve
from registration.engine.pipeline import RegistrationOptions, register
from registration.engine.refine import RefineLevel
from simulation.phantom_ct import synthetic_bone_ct
from tests.registration.tiny_ct import write_nifti

GRID = LibraryGrid()
STEP_DEG = 15.0  # the grid step of LibraryGrid's views
FAST = RegistrationOptions(
    refine_size=96, depth_search_size=0, profile_search=False, n_restarts=1,
    refine_levels=(RefineLevel(4, 20, 2.0, 48, depth=False), RefineLevel(4, 20, 1.5, 48),
                   RefineLevel(2, 20, 0.5, 64), RefineLevel(1, 8, 0.15, 96)),
)


@pytest.fixture(scope="module")
def scene():
    vol = synthetic_bone_ct(48, 4.0)
    cam = Camera.from_geometry(96, 96, 1000.0, 3.0, 3.0)
    return vol, cam, DrrRenderer(vol, bone_threshold_hu=200.0)


def _retrieve(renderer, cam, img, valid):
    centre = np.zeros(3)
    lib = library_for(renderer, centre, 96.0 * np.sqrt(3), cam.K, img.shape,
                      cam.source_to_detector_mm, GRID)
    return retrieve(lib, img, valid, cam.K, GRID)


@pytest.mark.parametrize("lao, cranial, shift", [(30.0, 15.0, (0.0, 0.0, 0.0)),
                                                 (-52.0, 8.0, (15.0, -10.0, 5.0)),
                                                 (84.0, -20.0, (0.0, 10.0, -10.0))])
def test_retrieval_recovers_the_pose_within_the_grid_step(scene, lao, cranial, shift):
    vol, cam, renderer = scene
    T_true = carm_pose(lao, cranial, 640.0, np.asarray(shift))
    img = renderer.render_numpy(cam, T_true, samples_per_ray=96)
    best = _retrieve(renderer, cam, img, np.ones(img.shape, bool))[0]
    assert abs(best.lao_deg - lao) <= STEP_DEG and abs(best.cranial_deg - cranial) <= STEP_DEG
    T = best.T_cam_from_world
    assert rotation_angle_deg(T[:3, :3], T_true[:3, :3]) <= STEP_DEG
    # the CT centre lands within a few pixels, the depth within a scale step
    c = np.zeros((1, 3))
    assert np.linalg.norm(project(c, cam.K, T) - project(c, cam.K, T_true)) < 6.0
    z, z_true = T[2, 3], T_true[2, 3]
    assert abs(z - z_true) < 0.15 * z_true


def test_retrieval_finds_where_a_closeup_window_sits(scene):
    """A window of half the detector, off its centre: one of the retrieved starts (they
    all compete in the pipeline) has the view within the grid step and puts the CT
    centre where it belongs in the window."""
    vol, cam, renderer = scene
    T_true = carm_pose(-20.0, 10.0, 650.0, np.zeros(3))
    # a 48 px window off the centre of the 96 px detector, resampled to 64 px
    wcam = window_camera(cam, 30.0, 18.0, 48.0, 64)
    img = renderer.render_numpy(wcam, T_true, samples_per_ray=96)
    valid = window_valid_mask(cam, 30.0, 18.0, 48.0, 64)
    c = np.zeros((1, 3))
    good = [m for m in _retrieve(renderer, wcam, img, valid)
            if rotation_angle_deg(m.T_cam_from_world[:3, :3], T_true[:3, :3]) <= STEP_DEG
            and np.linalg.norm(project(c, wcam.K, m.T_cam_from_world)
                               - project(c, wcam.K, T_true)) < 8.0]
    assert good


def test_register_without_model_or_start_is_training_free(scene):
    vol, cam, renderer = scene
    T_true = carm_pose(35.0, -12.0, 650.0, np.array([8.0, 0.0, -6.0]))
    img = renderer.render_numpy(cam, T_true, samples_per_ray=128)
    res = register(vol, None, img, np.ones(img.shape, bool), cam, options=FAST, renderer=renderer)
    start = res.stages["start"]
    assert start["mode"] == "training-free" and "library" in start["candidates"]
    assert res.status == "ok", res.message
    assert start["winner"] == "library" and "training-free" in res.message
    pts = np.random.default_rng(0).uniform(-60, 60, (200, 3))
    assert float(np.mean(target_error_mm(pts, res.T_cam_from_world, T_true))) < 2.0


def test_register_xray_without_model_writes_training_free_result(tmp_path):
    """Through the command on a 1.5 mm phantom: at the module's 4 mm the depth-rival check
    (its margin doubled for coarse voxels) rightly refuses the pose."""
    vol = synthetic_bone_ct(128, 1.5)
    cam = Camera.from_geometry(96, 96, 1000.0, 3.0, 3.0)
    renderer = DrrRenderer(vol, bone_threshold_hu=200.0)
    ct = write_nifti(vol, tmp_path / "ct.nii.gz")
    (tmp_path / "camera.json").write_text(json.dumps(cam.to_json()))
    T_true = carm_pose(-25.0, 10.0, 650.0, np.zeros(3))
    li = renderer.render_numpy(cam, T_true, samples_per_ray=128)
    cv2.imwrite(str(tmp_path / "xray.png"), np.round(60000 * np.exp(-li)).astype(np.uint16))
    out = tmp_path / "result.json"
    call_command("register_xray", "--ct", str(ct), "--xray", str(tmp_path / "xray.png"),
                 "--camera", str(tmp_path / "camera.json"), "--out", str(out), verbosity=0)
    data = json.loads(out.read_text())
    assert set(data) == {"status", "message", "T_cam_from_world", "seconds", "stages",
                         "n_correspondences", "n_inliers", "similarity"}
    assert data["stages"]["start"]["mode"] == "training-free"
    assert data["status"] == "ok", data["message"]
    assert data["stages"]["start"]["winner"] == "library"
    assert "training-free" in data["message"]
