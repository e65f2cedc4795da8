"""The plane (Joseph) renderer against an independent NumPy integral on the whole volume.

The renderer works on slabs cropped to the content box, keeps resampled slabs in an LRU
cache and derives every ray from one 3x3 matrix per pose; none of that may change a
pixel. The reference here samples the uncropped volume with SciPy (bilinear in each
slice, zero outside) where each pixel's ray crosses the slices of the marching axis.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.ndimage import map_coordinates

from dicomio.volume import CTVolume
from geometry.camera import Camera
from geometry.carm import carm_pose
from registration.engine.attenuation import hu_to_mu
from registration.engine.drr import DrrRenderer

RTOL = 1e-9  # both in float64


def _volume() -> CTVolume:
    """Oblique, anisotropic volume whose content touches the volume's border on the low i
    and high k sides and stops short elsewhere (the crop's edges differ per side)."""
    rng = np.random.default_rng(3)
    arr = np.full((26, 30, 34), -1000.0, np.float32)
    arr[5:26, 4:24, 0:27] = rng.uniform(-300, 1500, (21, 20, 27)).astype(np.float32)
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    q *= np.sign(np.linalg.det(q))
    aff = np.eye(4)
    aff[:3, :3] = q @ np.diag([1.1, 0.9, 1.4])
    aff[:3, 3] = -aff[:3, :3] @ (np.array([34, 30, 26]) - 1) / 2
    return CTVolume(arr, aff)


def _reference(mu_kji: np.ndarray, affine: np.ndarray, T: np.ndarray, K: np.ndarray,
               pixels: np.ndarray, axis: int) -> np.ndarray:
    """Line integrals (per pixel) sampled at every slice of index ``axis`` (0 = i)."""
    n_i = mu_kji.shape[::-1]
    A_inv = np.linalg.inv(affine)
    src = -T[:3, :3].T @ T[:3, 3]
    o = A_inv[:3, :3] @ src + A_inv[:3, 3]
    out = []
    for u, v in pixels:
        d_world = T[:3, :3].T @ np.linalg.solve(K, [u, v, 1.0])
        d_world /= np.linalg.norm(d_world)
        d = A_inv[:3, :3] @ d_world  # index units per mm
        s = np.arange(n_i[axis], dtype=np.float64)
        t = (s - o[axis]) / d[axis]  # mm along the ray to each slice
        pts = o[None, :] + t[:, None] * d[None, :]  # (S, 3) index (i, j, k)
        vals = map_coordinates(mu_kji, pts[:, ::-1].T, order=1, mode="grid-constant", cval=0.0)
        # the in-plane coordinate of a slice sample is exact; map_coordinates also
        # interpolates along the axis, where the sample sits on the slice itself
        out.append(float(np.sum(vals * (t > 0)) / abs(d[axis])))
    return np.asarray(out)


@pytest.mark.parametrize("lao, cranial", [(0.0, 0.0), (65.0, 10.0), (20.0, 80.0)])
@pytest.mark.parametrize("bone_only", [False, True])
def test_planes_match_an_independent_integral(lao, cranial, bone_only):
    vol = _volume()
    cam = Camera.from_geometry(40, 36, 700.0, 1.0, 1.0, cx=21.3, cy=16.8)
    centre = vol.affine[:3, :3] @ (np.array([34, 30, 26]) - 1) / 2 + vol.affine[:3, 3]
    T = carm_pose(lao, cranial, 420.0, centre)
    r = DrrRenderer(vol, dtype=torch.float64)
    img = r.render(torch.as_tensor(T), torch.as_tensor(cam.K), cam.height, cam.width,
                   samples_per_ray=10_000, bone_only=bone_only)[0].numpy()
    mu = hu_to_mu(vol.array).astype(np.float64)
    if bone_only:
        mu = np.where(vol.array >= r.bone_threshold_hu, mu, 0.0)
    # the marching axis: the index axis most aligned with the mean unit ray direction
    vv, uu = np.mgrid[0 : cam.height, 0 : cam.width]
    pix = np.stack([uu.ravel(), vv.ravel(), np.ones(uu.size)], 1)
    d_world = pix @ np.linalg.inv(cam.K).T @ T[:3, :3]
    d_world /= np.linalg.norm(d_world, axis=1, keepdims=True)
    d_idx = d_world @ np.linalg.inv(vol.affine)[:3, :3].T
    axis = int(np.argmax(np.abs(d_idx.mean(0))))
    rng = np.random.default_rng(11)
    pixels = np.stack([rng.integers(0, cam.width, 25), rng.integers(0, cam.height, 25)], 1)
    ref = _reference(mu, vol.affine, T, cam.K, pixels, axis)
    got = img[pixels[:, 1], pixels[:, 0]]
    assert (ref > 0.05).sum() >= 10  # most rays cross the content
    np.testing.assert_allclose(got, ref, rtol=RTOL, atol=RTOL * ref.max())


def test_plane_cache_keeps_to_its_budget_and_changes_no_pixel():
    vol = _volume()
    cam = Camera.from_geometry(24, 24, 700.0, 1.5, 1.5)
    T = torch.as_tensor(carm_pose(15.0, 5.0, 420.0, np.zeros(3)))
    K = torch.as_tensor(cam.K)
    cached = DrrRenderer(vol)
    uncached = DrrRenderer(vol, plane_cache_bytes=0)
    slab_bytes = None
    for spr in (7, 11, 13, 7, 17, 11):  # revisits after evictions
        a = cached.render(T, K, 24, 24, samples_per_ray=spr)
        b = uncached.render(T, K, 24, 24, samples_per_ray=spr)
        assert torch.equal(a, b)
        slab_bytes = max(slab_bytes or 0, cached._plane_cache_used)
    assert uncached._plane_cache_used == 0 and not uncached._plane_cache
    small = DrrRenderer(vol, plane_cache_bytes=slab_bytes // 3)
    for spr in (7, 11, 13, 17):
        small.render(T, K, 24, 24, samples_per_ray=spr)
        assert small._plane_cache_used <= small.plane_cache_bytes
