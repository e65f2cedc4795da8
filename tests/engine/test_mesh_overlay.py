"""Bone mesh (marching cubes in LPS) and edge overlays (DRR edges, mesh silhouette, PNG)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from dicomio.volume import CTVolume
from geometry.camera import Camera, project
from geometry.carm import carm_pose
from registration.engine.drr import DrrRenderer
from registration.engine.mesh import bone_mesh, signed_volume_mm3
from registration.engine.overlay import bone_overlay_png, drr_edges, mesh_silhouette, overlay_png

RADIUS = 12.0


def _sphere(
    affine: np.ndarray, shape=(40, 40, 40), center=(1.0, -2.0, 3.0), ramp=400.0
) -> CTVolume:
    k, j, i = np.mgrid[0 : shape[0], 0 : shape[1], 0 : shape[2]].astype(np.float64)
    xyz = np.stack([i, j, k], -1).reshape(-1, 3) @ affine[:3, :3].T + affine[:3, 3]
    r = np.linalg.norm(xyz - np.asarray(center), axis=-1)
    hu = np.clip(200.0 + ramp * (RADIUS - r), -1000.0, 1500.0).reshape(shape)
    return CTVolume(hu.astype(np.float32), affine)


def _affines():
    a = np.diag([0.9, 0.8, 1.0, 1.0])
    a[:3, 3] = [-18.0, -16.0, -17.0]
    b = a.copy()
    b[0, 0] = -0.9  # mirrored i axis: det < 0
    b[0, 3] = 18.0
    return [a, b]


@pytest.mark.parametrize("affine", _affines())
def test_sphere_mesh_in_lps(affine):
    vol = _sphere(affine)
    mesh = bone_mesh(vol, threshold_hu=200.0)
    r = np.linalg.norm(mesh.vertices - np.array([1.0, -2.0, 3.0]), axis=1)
    assert np.abs(r - RADIUS).max() < 0.4
    vol_mm3 = signed_volume_mm3(mesh)
    assert vol_mm3 == pytest.approx(4 / 3 * np.pi * RADIUS**3, rel=0.05)
    assert mesh.faces.dtype == np.int32 and mesh.faces.max() < len(mesh.vertices)


def test_mesh_vertex_budget_and_errors():
    vol = _sphere(_affines()[0])
    small = bone_mesh(vol, max_vertices=300)
    assert len(small.vertices) <= 300
    assert signed_volume_mm3(small) == pytest.approx(4 / 3 * np.pi * RADIUS**3, rel=0.25)
    with pytest.raises(ValueError, match="threshold"):
        bone_mesh(CTVolume(np.full((5, 5, 5), -1000.0), np.eye(4)))


def test_mesh_silhouette_and_drr_edges_outline_the_sphere():
    vol = _sphere(_affines()[0])
    cam = Camera.from_geometry(96, 96, 1000.0, 0.8, 0.8)
    T = carm_pose(25.0, 10.0, 600.0, [0.0, 0.0, 0.0])
    center = np.array([1.0, -2.0, 3.0])
    c_uv = project(center[None], cam.K, T)[0]
    depth = (T[:3, :3] @ center + T[:3, 3])[2]
    r_px = cam.K[0, 0] * RADIUS / np.sqrt(depth**2 - RADIUS**2)  # tangent cone
    vv, uu = np.mgrid[0:96, 0:96]
    dist = np.hypot(uu - c_uv[0], vv - c_uv[1])
    mesh = bone_mesh(vol)
    sil = mesh_silhouette(mesh.vertices, mesh.faces, cam, T)
    assert sil.sum() > 50
    assert np.abs(dist[sil] - r_px).max() < 1.5
    sharp = _sphere(_affines()[0], ramp=4000.0)  # bone edge within a voxel
    drr = DrrRenderer(sharp).render_numpy(cam, T, bone_only=True)
    edges = drr_edges(drr)
    assert edges.sum() > 50
    # Sobel + non-maximum suppression puts the edge of a solid sphere about one pixel
    # inside its rim (the chord length is steepest there)
    assert np.median(np.abs(dist[edges] - r_px)) < 2.0


def test_overlay_png_blends_colour():
    xray = np.tile(np.linspace(0, 1000, 64), (48, 1))
    edges = np.zeros((48, 64), bool)
    edges[10, 5:60] = True
    img = cv2.imdecode(
        np.frombuffer(overlay_png(xray, edges, opacity=1.0), np.uint8), cv2.IMREAD_COLOR
    )
    assert img.shape == (48, 64, 3)
    assert (img[10, 5:60] == [0, 255, 0]).all()  # BGR green
    assert (img[20, :, 0] == img[20, :, 2]).all()  # untouched pixels stay grey
    half = cv2.imdecode(
        np.frombuffer(overlay_png(xray, edges, opacity=0.5), np.uint8), cv2.IMREAD_COLOR
    )
    assert 0 < half[10, 30, 1] - half[10, 30, 0] < 255
    with pytest.raises(ValueError, match="opacity"):
        overlay_png(xray, edges, opacity=2.0)
    with pytest.raises(ValueError, match="does not match"):
        overlay_png(xray, edges[:10])


def test_bone_overlay_checks_sizes():
    vol = _sphere(_affines()[0])
    cam = Camera.from_geometry(32, 32, 1000.0, 1.0, 1.0)
    T = carm_pose(0.0, 0.0, 600.0, [0.0, 0.0, 0.0])
    png = bone_overlay_png(
        np.zeros((32, 32)), DrrRenderer(vol), cam, T, mode="both", mesh=bone_mesh(vol)
    )
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="does not match the camera"):
        bone_overlay_png(np.zeros((31, 32)), DrrRenderer(vol), cam, T)
