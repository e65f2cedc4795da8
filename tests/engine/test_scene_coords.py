"""Scene coordinates on analytic shapes: entry/exit points within 0.3 mm of the surface."""

from __future__ import annotations

import numpy as np
import pytest

from dicomio.volume import CTVolume
from geometry.camera import Camera, pixel_rays
from geometry.carm import carm_pose
from registration.engine.scene_coords import scene_coordinates

THRESHOLD = 200.0


def _volume_from_sdf(sdf, shape=(48, 52, 56), spacing=(1.0, 0.9, 1.1)) -> CTVolume:
    """HU = 200 + 400 * (signed distance inside, mm), clipped: the 200 HU iso-surface is the
    analytic surface. World origin at the volume centre."""
    k, j, i = np.mgrid[0 : shape[0], 0 : shape[1], 0 : shape[2]].astype(np.float64)
    aff = np.diag([*spacing, 1.0])
    aff[:3, 3] = -(np.array(shape[::-1]) - 1) / 2 * np.array(spacing)
    xyz = np.stack([i, j, k], -1).reshape(-1, 3) @ aff[:3, :3].T + aff[:3, 3]
    hu = np.clip(THRESHOLD + 400.0 * sdf(xyz), -1000.0, 1500.0).reshape(shape)
    return CTVolume(hu.astype(np.float32), aff)


def _sphere_sdf(center, radius):
    return lambda p: radius - np.linalg.norm(p - center, axis=-1)


def _box_sdf(lo, hi):
    lo, hi = np.asarray(lo), np.asarray(hi)

    def sdf(p):
        c = (lo + hi) / 2
        h = (hi - lo) / 2
        q = np.abs(p - c) - h
        outside = np.linalg.norm(np.maximum(q, 0.0), axis=-1)
        inside = np.minimum(q.max(axis=-1), 0.0)
        return -(outside + inside)

    return sdf


@pytest.mark.parametrize("method", ["planes", "steps"])
@pytest.mark.parametrize("lao, cra", [(0.0, 0.0), (40.0, 15.0), (-75.0, -20.0)])
def test_sphere_entry_exit_on_surface(lao, cra, method):
    center = np.array([2.0, -3.0, 1.5])
    radius = 14.0
    vol = _volume_from_sdf(_sphere_sdf(center, radius))
    cam = Camera.from_geometry(48, 48, 1000.0, 1.0, 1.0)
    T = carm_pose(lao, cra, 600.0, [0.0, 0.0, 0.0])
    sc = scene_coordinates(vol, cam, T, bone_threshold_hu=THRESHOLD, method=method)
    entry, exit_, mask = sc.numpy()
    assert entry.shape == (48, 48, 3) and mask.dtype == bool
    # analytic hit mask: distance of the ray to the centre
    src, dirs = pixel_rays(cam, T)
    v = center - src
    dist = np.linalg.norm(v - (dirs @ v)[..., None] * dirs, axis=-1)
    assert mask[dist < radius - 0.5].all()
    assert not mask[dist > radius + 0.5].any()
    good = mask & (dist < radius - 1.0)  # away from grazing rays
    for pts in (entry, exit_):
        err = np.abs(np.linalg.norm(pts[good] - center, axis=-1) - radius)
        assert err.max() < 0.3, err.max()
    # entry is nearer to the source than exit
    assert (
        np.linalg.norm(entry[good] - src, axis=-1) < np.linalg.norm(exit_[good] - src, axis=-1)
    ).all()
    assert np.isnan(entry[~mask]).all()


@pytest.mark.parametrize("method", ["planes", "steps"])
def test_box_entry_exit_on_surface_batched(method):
    lo, hi = np.array([-12.0, -9.0, -15.0]), np.array([10.0, 11.0, 8.0])
    sdf = _box_sdf(lo, hi)
    vol = _volume_from_sdf(sdf)
    cam = Camera.from_geometry(40, 40, 1000.0, 1.2, 1.2)
    views = ((0, 0), (30, -10), (90, 0))  # different marching axes in one batch
    Ts = np.stack([carm_pose(a, b, 600.0, [0.0, 0.0, 0.0]) for a, b in views])
    sc = scene_coordinates(vol, cam, Ts, bone_threshold_hu=THRESHOLD, method=method)
    entry, exit_, mask = sc.numpy()
    assert entry.shape == (3, 40, 40, 3)
    assert mask.sum() > 200
    for pts in (entry, exit_):
        p = pts[mask]
        # keep points away from the box's edges, where the ramped volume is not a box
        q = np.abs(p - (lo + hi) / 2) - (hi - lo) / 2
        near_faces = (q > -2.0).sum(-1) == 1
        assert near_faces.sum() > 100
        err = np.abs(sdf(p[near_faces]))
        assert err.max() < 0.3, err.max()


def test_no_bone_gives_empty_mask():
    vol = CTVolume(np.full((10, 10, 10), -1000.0, np.float32), np.eye(4))
    cam = Camera.from_geometry(8, 8, 1000.0, 1.0, 1.0)
    sc = scene_coordinates(vol, cam, carm_pose(0, 0, 600, [4.5, 4.5, 4.5]))
    assert not sc.mask.any() and sc.entry.isnan().all()


def test_cache_follows_the_volume():
    cam = Camera.from_geometry(16, 16, 1000.0, 2.0, 2.0)
    T = carm_pose(0.0, 0.0, 600.0, [0.0, 0.0, 0.0])
    first = _volume_from_sdf(_sphere_sdf(np.zeros(3), 8.0), shape=(24, 24, 24))
    a = scene_coordinates(first, cam, T).mask.sum().item()
    second = _volume_from_sdf(_sphere_sdf(np.zeros(3), 4.0), shape=(24, 24, 24))
    b = scene_coordinates(second, cam, T).mask.sum().item()
    assert a > b > 0
