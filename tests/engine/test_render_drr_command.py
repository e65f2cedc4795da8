"""``manage.py render_drr``: outputs, timing JSON and clear failures without partial files."""

from __future__ import annotations

import json

import numpy as np
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from geometry.camera import Camera
from geometry.carm import carm_pose
from registration.engine.drr import render_drr
from tests.engine.helpers import box_volume, volume_center


@pytest.fixture
def inputs(tmp_path):
    nib = pytest.importorskip("nibabel")
    vol = box_volume()
    ras = vol.affine.copy()
    ras[:2] *= -1.0
    ct = tmp_path / "ct.nii.gz"
    nib.save(nib.Nifti1Image(vol.array.transpose(2, 1, 0).astype(np.int16), ras), str(ct))
    cam = Camera.from_geometry(40, 32, 1000.0, 1.0, 1.0)
    (tmp_path / "camera.json").write_text(json.dumps(cam.to_json()))
    T = carm_pose(15.0, 5.0, 600.0, volume_center(vol))
    (tmp_path / "pose.json").write_text(json.dumps({"T_cam_from_world": T.tolist()}))
    return tmp_path, vol, cam, T


def _args(d, **over):
    args = {
        "ct": str(d / "ct.nii.gz"),
        "camera": str(d / "camera.json"),
        "pose": str(d / "pose.json"),
        "out": str(d / "DRR.npy"),
    }
    args.update(over)
    return [x for k, v in args.items() for x in (f"--{k}", v)]


def test_render_drr_writes_npy_and_timing(inputs):
    d, vol, cam, T = inputs
    call_command("render_drr", *_args(d), "--repeat", "3")
    drr = np.load(d / "DRR.npy")
    assert drr.dtype == np.float32 and drr.shape == (32, 40)
    expected = render_drr(vol, cam, T)
    np.testing.assert_allclose(drr, expected, rtol=1e-4, atol=1e-5)
    meta = json.loads((d / "DRR.json").read_text())
    assert set(meta) == {"seconds_per_image", "samples_per_ray", "device"}
    # planes scheme: one sample per CT slice along the marching axis (<= 256)
    assert meta["seconds_per_image"] > 0 and 1 <= meta["samples_per_ray"] <= 256
    assert isinstance(meta["samples_per_ray"], int)
    assert meta["device"] == "cpu"


@pytest.mark.parametrize(
    "change, message",
    [
        ({"ct": "missing.nii.gz"}, "CT not found"),
        ({"camera": "nope.json"}, "camera file not found"),
        ({"pose": "badpose.json"}, "T_cam_from_world"),
        ({"pose": "garbage.json"}, "not valid JSON"),
        ({"pose": "reflect.json"}, "determinant"),
        ({"camera": "badcam.json"}, "missing field"),
    ],
)
def test_render_drr_refuses_bad_inputs(inputs, change, message):
    d = inputs[0]
    (d / "badpose.json").write_text(json.dumps({"T": [[1]]}))
    (d / "garbage.json").write_text("{not json")
    (d / "reflect.json").write_text(
        json.dumps({"T_cam_from_world": np.diag([1, 1, -1, 1]).tolist()})
    )
    (d / "badcam.json").write_text(json.dumps({"width": 4}))
    change = {k: (v if k == "ct" and v.startswith("/") else str(d / v)) for k, v in change.items()}
    with pytest.raises(CommandError, match=message):
        call_command("render_drr", *_args(d, **change))
    assert not (d / "DRR.npy").exists() and not (d / "DRR.json").exists()
    assert not [p for p in d.iterdir() if p.name.endswith(".tmp")]


def test_render_drr_rejects_bad_repeat_and_missing_folder(inputs):
    d = inputs[0]
    with pytest.raises(CommandError, match="repeat"):
        call_command("render_drr", *_args(d), "--repeat", "0")
    with pytest.raises(CommandError, match="folder does not exist"):
        call_command("render_drr", *_args(d, out=str(d / "no" / "DRR.npy")))


def test_render_drr_cli_exit_codes(inputs):
    """The real command line: exit 0 on success, non-zero with a one-line stderr otherwise."""
    import subprocess
    import sys
    from pathlib import Path

    d = inputs[0]
    root = Path(__file__).resolve().parents[2]
    ok = subprocess.run(
        [sys.executable, "manage.py", "render_drr", *_args(d)],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert ok.returncode == 0, ok.stderr
    assert np.load(d / "DRR.npy").shape == (32, 40)
    bad = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "render_drr",
            *_args(d, pose=str(d / "missing.json"), out=str(d / "X.npy")),
        ],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert bad.returncode != 0
    lines = [line for line in bad.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and "pose file not found" in lines[0]
    assert not (d / "X.npy").exists()
