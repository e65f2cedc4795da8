"""The self-check never passes a wrong pose, whatever the image's stored form: on linear
count and log-display copies of one noisy simulated shot (normalised by
xray_input.line_integral_with_info), the pose 15 mm / 8 deg off is refused with a
reason and what to try, and the true pose is accepted."""

from __future__ import annotations

import numpy as np
import pytest

from geometry.camera import Camera
from geometry.carm import carm_pose
from geometry.rigid import perturb_pose
from registration.engine.drr import DrrRenderer
from registration.engine.pipeline import RegistrationOptions, register
from registration.engine.xray_input import line_integral_with_info
from registration.engine.xray_sim import XraySimParams, simulate_xray
from simulation.phantom_ct import synthetic_bone_ct

FULL = 2**16 - 1
CHECK_ONLY = RegistrationOptions(refine=False, library="off", refine_size=96)


@pytest.fixture(scope="module")
def scene():
    vol = synthetic_bone_ct(48, 4.0)
    cam = Camera.from_geometry(128, 128, 1000.0, 2.4, 2.4)
    renderer = DrrRenderer(vol, bone_threshold_hu=200.0)
    T_true = carm_pose(20.0, -10.0, 650.0, np.array([5.0, 0.0, -5.0]))
    drr = renderer.render_numpy(cam, T_true, samples_per_ray=128)
    sim = simulate_xray(drr, XraySimParams(dose=6e3, gain=0.8, ii_radius_fraction=None),
                        rng=np.random.default_rng(4))
    v = sim.pixels.astype(np.float64) / FULL
    log_disp = np.clip(1.0 + np.log(np.maximum(v, 1.0 / FULL)) / 6.0, 0.0, 1.0)
    forms = {"linear": sim.pixels,
             "log": np.where(sim.pixels > 0, np.round(log_disp * FULL), 0).astype(np.uint16)}
    images = {k: line_integral_with_info(px, "MONOCHROME2", bits_stored=16)[:2]
              for k, px in forms.items()}
    return vol, cam, renderer, T_true, images, forms


@pytest.mark.parametrize("form", ["linear", "log"])
def test_true_pose_passes(scene, form):
    vol, cam, renderer, T_true, images, _ = scene
    li, valid = images[form]
    res = register(vol, None, li, valid, cam, T_init=T_true, options=CHECK_ONLY,
                   renderer=renderer)
    assert res.status == "ok", res.message


@pytest.mark.parametrize("form", ["linear", "log"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_wrong_pose_is_refused_with_advice(scene, form, seed):
    vol, cam, renderer, T_true, images, _ = scene
    li, valid = images[form]
    T_wrong = perturb_pose(T_true, 8.0, 15.0, np.random.default_rng(seed),
                           center_world=np.zeros(3))
    res = register(vol, None, li, valid, cam, T_init=T_wrong, options=CHECK_ONLY,
                   renderer=renderer)
    assert res.status == "failed" and res.T_cam_from_world is None
    assert "try" in res.message.lower()
    assert res.stages["quality"]["advice"]


def test_legacy_conversion_of_a_log_display_scores_lower(scene):
    """Why the form matters: the log display read as linear counts (the header convention
    alone, as before) matches its true pose worse than the normalised image does."""
    from registration.engine.intensity import line_integral_and_mask

    vol, cam, renderer, T_true, images, forms = scene
    li, valid = images["log"]
    good = register(vol, None, li, valid, cam, T_init=T_true, options=CHECK_ONLY,
                    renderer=renderer)
    li_old, valid_old = line_integral_and_mask(forms["log"], "MONOCHROME2", bits_stored=16)
    old = register(vol, None, li_old, valid_old, cam, T_init=T_true, options=CHECK_ONLY,
                   renderer=renderer)
    assert good.similarity > old.similarity
