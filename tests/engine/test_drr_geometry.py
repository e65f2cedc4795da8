"""DRR geometry and integral: marker projection, analytic box, patch, batch, bone only."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dicomio.volume import CTVolume
from geometry.camera import Camera, project
from geometry.carm import carm_pose
from registration.engine.attenuation import hu_to_mu
from registration.engine.drr import DrrRenderer
from tests.engine.helpers import box_volume, volume_center


def _subpixel_peak(img: np.ndarray) -> tuple[float, float]:
    """Centroid of the 3x3 neighbourhood of the maximum -> (u, v)."""
    v, u = np.unravel_index(np.argmax(img), img.shape)
    win = img[v - 1 : v + 2, u - 1 : u + 2].astype(np.float64)
    win = np.clip(win - np.median(img), 0, None)
    dv, du = np.mgrid[-1:2, -1:2]
    return u + (win * du).sum() / win.sum(), v + (win * dv).sum() / win.sum()


@pytest.mark.parametrize("method", ["planes", "rays"])
@pytest.mark.parametrize("lao, cra, ip", [(0.0, 0.0, 0.0), (35.0, -20.0, 10.0), (-70.0, 25.0, 0.0)])
def test_marker_voxel_projects_where_the_camera_says(lao, cra, ip, method):
    rng = np.random.default_rng(7)
    arr = np.full((30, 34, 38), -1000.0, np.float32)
    ijk = np.array([21, 13, 17])
    arr[ijk[2], ijk[1], ijk[0]] = 3000.0
    # oblique affine: rotated and anisotropic voxels
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    q *= np.sign(np.linalg.det(q))
    aff = np.eye(4)
    aff[:3, :3] = q @ np.diag([0.9, 1.1, 1.3])
    aff[:3, 3] = [-20.0, 15.0, 5.0]
    vol = CTVolume(arr, aff)
    cam = Camera.from_geometry(96, 96, 1000.0, 0.4, 0.4, cx=50.3, cy=44.8)
    T = carm_pose(lao, cra, 600.0, volume_center(vol), in_plane_deg=ip)
    img = DrrRenderer(vol).render(
        torch.as_tensor(T), torch.as_tensor(cam.K), 96, 96, samples_per_ray=512
    )
    u, v = _subpixel_peak(img[0].numpy())
    expected = project(vol.voxel_to_world(ijk[None].astype(float)), cam.K, T)[0]
    assert np.hypot(u - expected[0], v - expected[1]) < 0.5


@pytest.mark.parametrize(
    "method, plane_sampling", [("planes", "slices"), ("planes", "exact"), ("rays", "slices")]
)
def test_line_integral_of_a_box_is_mu_times_length(method, plane_sampling):
    vol = box_volume(shape_kji=(20, 20, 20), spacing=(1.0, 1.0, 1.0), lo=(0, 0, 0), hi=(20, 20, 20))
    cam = Camera.from_geometry(9, 9, 1000.0, 0.05, 0.05)
    T = carm_pose(0.0, 0.0, 600.0, volume_center(vol))
    img = DrrRenderer(vol).render(
        torch.as_tensor(T), torch.as_tensor(cam.K), 9, 9, samples_per_ray=64
    )
    mu = float(hu_to_mu(np.array([1000.0]))[0])
    # central ray crosses the full 20 mm (voxel cubes) of constant mu
    assert img[0, 4, 4].item() == pytest.approx(mu * 20.0, rel=1e-4)


@pytest.mark.parametrize("method", ["planes", "rays"])
def test_patch_equals_crop_and_batch_equals_single(method):
    vol = box_volume()
    cam = Camera.from_geometry(48, 40, 1000.0, 1.0, 1.0)
    r = DrrRenderer(vol, max_points_per_chunk=5000, method=method)
    # poses marching along different volume axes in one batch
    views = ((0, 0), (20, 10), (90, 0), (0, 80))
    Ts = torch.stack(
        [torch.as_tensor(carm_pose(a, b, 600.0, volume_center(vol))) for a, b in views]
    )
    K = torch.as_tensor(cam.K)
    full = r.render(Ts, K, 40, 48, samples_per_ray=64)
    assert full.shape == (4, 40, 48)
    for i in range(4):
        single = r.render(Ts[i], K, 40, 48, samples_per_ray=64)
        torch.testing.assert_close(full[i], single[0], rtol=1e-5, atol=1e-6)
        assert single.max() > 0.1
    patch = r.render(Ts, K, 40, 48, samples_per_ray=64, patch=(10, 5, 20, 16))
    torch.testing.assert_close(patch, full[:, 5:21, 10:30], rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="patch"):
        r.render(Ts, K, 40, 48, patch=(40, 0, 20, 10))


def test_bone_only_removes_soft_tissue():
    arr = np.full((20, 20, 20), -1000.0, np.float32)
    arr[2:18, 2:18, 2:18] = 40.0  # soft tissue
    arr[8:12, 8:12, 8:12] = 1200.0  # bone
    vol = CTVolume(arr, np.diag([1.0, 1.0, 1.0, 1.0]))
    cam = Camera.from_geometry(32, 32, 1000.0, 2.0, 2.0)  # 1.2 mm per pixel at the centre
    T = torch.as_tensor(carm_pose(0.0, 0.0, 600.0, volume_center(vol)))
    K = torch.as_tensor(cam.K)
    r = DrrRenderer(vol, bone_threshold_hu=300.0)
    full = r.render(T, K, 32, 32, samples_per_ray=128)[0]
    bone = r.render(T, K, 32, 32, samples_per_ray=128, bone_only=True)[0]
    assert bone[0, 0].item() == 0.0 and full[2, 2].item() == 0.0
    assert bone[16, 16].item() > 0.1
    assert full[16, 16].item() > bone[16, 16].item()
    # soft tissue only ray: visible in full, absent in bone-only
    assert full[16, 11].item() > 0.1 and bone[16, 11].item() == 0.0
    # mask instead of threshold
    mask = np.zeros_like(arr, bool)
    r2 = DrrRenderer(vol, bone_mask=mask)
    assert r2.render(T, K, 32, 32, bone_only=True).abs().max().item() == 0.0


def test_bad_inputs_are_rejected():
    vol = box_volume()
    r = DrrRenderer(vol)
    K = torch.eye(3)
    with pytest.raises(ValueError, match="4, 4"):
        r.render(torch.eye(3), K, 8, 8)
    with pytest.raises(ValueError, match="NaN"):
        r.render(torch.full((4, 4), float("nan")), K, 8, 8)
    with pytest.raises(ValueError, match="samples_per_ray"):
        r.render(torch.eye(4), K, 8, 8, samples_per_ray=0)
    with pytest.raises(ValueError, match="at least 2"):
        DrrRenderer(CTVolume(np.zeros((1, 4, 4)), np.eye(4)))


def test_source_inside_volume_counts_only_planes_in_front():
    vol = box_volume(shape_kji=(30, 30, 30), spacing=(1.0, 1.0, 1.0), lo=(0, 0, 0), hi=(30, 30, 30))
    cam = Camera.from_geometry(16, 16, 1000.0, 2.0, 2.0)
    # source 5 mm posterior of the centre: inside the 30 mm box
    T = torch.as_tensor(carm_pose(0.0, 0.0, 5.0, volume_center(vol)))
    K = torch.as_tensor(cam.K)
    planes = DrrRenderer(vol, method="planes").render(T, K, 16, 16, samples_per_ray=256)[0]
    rays = DrrRenderer(vol, method="rays").render(T, K, 16, 16, samples_per_ray=256)[0]
    mu = float(hu_to_mu(np.array([1000.0]))[0])
    # central ray: from the source (5 mm behind the centre) to the anterior face, 20 mm
    assert rays[7:9, 7:9].mean().item() == pytest.approx(mu * 20.0, rel=0.02)
    torch.testing.assert_close(planes, rays, rtol=0.03, atol=0.01)
