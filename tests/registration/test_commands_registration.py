"""train_registration_model and register_xray end to end on a tiny synthetic CT (NIfTI
written here), with the quick preset shrunk through environment variables."""

from __future__ import annotations

import json
import os

import cv2
import numpy as np
import pytest
import torch
from django.core.management import call_command
from django.core.management.base import CommandError

from geometry.camera import Camera
from geometry.carm import carm_pose
from geometry.rigid import perturb_pose
from registration.engine.drr import DrrRenderer
from simulation.phantom_ct import synthetic_bone_ct
from tests.registration.tiny_ct import write_nifti

RESULT_KEYS = {"status", "message", "T_cam_from_world", "seconds", "stages", "n_correspondences",
               "n_inliers", "similarity"}
TINY = {"ORTHOFUSE_TRAIN_STEPS": "80", "ORTHOFUSE_TRAIN_POOL": "4", "ORTHOFUSE_TRAIN_SIZE": "32",
        "ORTHOFUSE_TRAIN_BATCH": "2"}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    d = tmp_path_factory.mktemp("reg")
    vol = synthetic_bone_ct(32, 6.0)
    ct = d / "ct.nii.gz"
    write_nifti(vol, ct)
    cam = Camera.from_geometry(64, 64, 1000.0, 3.6, 3.6)
    (d / "camera.json").write_text(json.dumps(cam.to_json()))
    old = {k: os.environ.get(k) for k in TINY}
    os.environ.update(TINY)
    try:
        call_command("train_registration_model", "--ct", str(ct), "--camera", str(d / "camera.json"),
                     "--out", str(d / "model"), "--preset", "quick", "--seed", "3", verbosity=0)
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    # a simulated X-ray as a 16-bit PNG (C-arm convention: exposure, bone dark)
    T_true = carm_pose(10.0, 5.0, 650.0, [0.0, 0.0, 0.0])
    renderer = DrrRenderer(vol, bone_threshold_hu=200.0)
    with torch.no_grad():
        li = renderer.render(torch.as_tensor(T_true[None], dtype=torch.float32),
                             torch.as_tensor(cam.K, dtype=torch.float32), 64, 64, samples_per_ray=96)[0].numpy()
    png = np.round(60000 * np.exp(-li)).astype(np.uint16)
    cv2.imwrite(str(d / "xray.png"), png)
    return {"dir": d, "ct": ct, "camera": d / "camera.json", "model": d / "model", "png": d / "xray.png",
            "T_true": T_true}


def test_train_writes_model_with_metadata(trained):
    meta = json.loads((trained["model"] / "model.json").read_text())
    for key in ("preset", "input_size", "normalisation", "camera", "bone_threshold_hu", "architecture",
                "training", "ct_fingerprint", "seed", "versions"):
        assert key in meta, key
    assert meta["preset"] == "quick"
    assert meta["input_size"] == 32
    assert meta["seed"] == 3
    assert meta["training"]["steps_done"] == int(TINY["ORTHOFUSE_TRAIN_STEPS"])
    assert len(meta["normalisation"]["centre_lps_mm"]) == 3
    assert (trained["model"] / "weights.pt").is_file()
    assert not [p for p in trained["dir"].iterdir() if p.name.startswith(".model")]


def test_register_writes_result_json(trained):
    out = trained["dir"] / "result_norefine.json"
    call_command("register_xray", "--ct", str(trained["ct"]), "--model", str(trained["model"]),
                 "--xray", str(trained["png"]), "--camera", str(trained["camera"]), "--out", str(out),
                 "--no-refine", verbosity=0)
    res = json.loads(out.read_text())
    assert set(res) == RESULT_KEYS
    assert res["status"] in ("ok", "failed")
    assert res["message"]
    assert "network" in res["stages"] and res["stages"]["network"]["seconds"] >= 0
    assert res["seconds"] > 0
    if res["status"] == "ok":
        assert np.array(res["T_cam_from_world"]).shape == (4, 4)
    else:
        assert res["T_cam_from_world"] is None


def test_register_with_init_and_refinement(trained):
    T0 = perturb_pose(trained["T_true"], 2.0, 4.0, np.random.default_rng(0), center_world=np.zeros(3))
    pose = trained["dir"] / "init.json"
    pose.write_text(json.dumps({"T_cam_from_world": T0.tolist()}))
    out = trained["dir"] / "result_refine.json"
    call_command("register_xray", "--ct", str(trained["ct"]), "--model", str(trained["model"]),
                 "--xray", str(trained["png"]), "--camera", str(trained["camera"]), "--out", str(out),
                 "--init", str(pose), verbosity=0)
    res = json.loads(out.read_text())
    assert res["status"] == "ok", res["message"]
    assert "refine" in res["stages"]
    T = np.array(res["T_cam_from_world"])
    src_err = np.linalg.norm(-T[:3, :3].T @ T[:3, 3] + trained["T_true"][:3, :3].T @ trained["T_true"][:3, 3])
    assert src_err < 30.0
    assert res["similarity"] > 0.5


def test_blank_xray_gives_failed_result_and_exit_zero(trained):
    blank = trained["dir"] / "blank.png"
    cv2.imwrite(str(blank), np.full((64, 64), 1000, np.uint16))
    out = trained["dir"] / "result_blank.json"
    call_command("register_xray", "--ct", str(trained["ct"]), "--model", str(trained["model"]),
                 "--xray", str(blank), "--camera", str(trained["camera"]), "--out", str(out), verbosity=0)
    res = json.loads(out.read_text())
    assert res["status"] == "failed"
    assert "blank" in res["message"]
    assert res["T_cam_from_world"] is None


@pytest.mark.parametrize(
    "change, pattern",
    [
        ({"--ct": "missing.nii.gz"}, "CT not found"),
        ({"--model": "no_model_here"}, "model directory not found"),
        ({"--camera": "bad_camera.json"}, "not valid JSON"),
        ({"--camera": None}, "PNG X-ray carries no geometry"),
        ({"--xray": "not_an_image.png"}, "cannot read the X-ray"),
    ],
)
def test_register_bad_inputs_fail_without_output(trained, change, pattern):
    d = trained["dir"]
    (d / "bad_camera.json").write_text("{not json")
    (d / "not_an_image.png").write_bytes(b"hello")
    args = {"--ct": str(trained["ct"]), "--model": str(trained["model"]), "--xray": str(trained["png"]),
            "--camera": str(trained["camera"])}
    for k, v in change.items():
        args[k] = None if v is None else str(d / v)
    out = d / "result_bad.json"
    argv = [x for k, v in args.items() if v is not None for x in (k, v)]
    with pytest.raises(CommandError, match=pattern):
        call_command("register_xray", *argv, "--out", str(out), verbosity=0)
    assert not out.exists()


def test_train_refuses_ct_without_bone(tmp_path):
    vol = synthetic_bone_ct(16, 10.0, bone=False)
    ct = tmp_path / "soft.nii.gz"
    write_nifti(vol, ct)
    (tmp_path / "camera.json").write_text(json.dumps(Camera.from_geometry(32, 32, 1000.0, 6.0, 6.0).to_json()))
    with pytest.raises(CommandError, match="no bone"):
        call_command("train_registration_model", "--ct", str(ct), "--camera", str(tmp_path / "camera.json"),
                     "--out", str(tmp_path / "m"), verbosity=0)
    assert not (tmp_path / "m").exists()
