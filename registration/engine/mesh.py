"""Bone surface mesh from a CT for the browser (no Django imports).

``bone_mesh`` runs scikit-image marching cubes on the HU array at a bone threshold, maps
the vertices through the volume affine to LPS mm, and keeps the mesh under a vertex
budget by coarsening the marching-cubes step (``step_size``) and, if still needed, by
vertex clustering on a regular grid. Faces are wound so that normals point out of bone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass
class Mesh:
    """``vertices`` (N, 3) float32 LPS mm and ``faces`` (M, 3) int32 (counter-clockwise seen
    from outside the bone)."""

    vertices: np.ndarray
    faces: np.ndarray

    def to_json(self) -> dict:
        return {
            "vertices": np.round(self.vertices.astype(np.float64), 2).tolist(),
            "faces": self.faces.astype(np.int64).tolist(),
        }


def _cluster(
    vertices: np.ndarray, faces: np.ndarray, cell_mm: float
) -> tuple[np.ndarray, np.ndarray]:
    """Vertex clustering: merge vertices in the same ``cell_mm`` cube (mean position), drop
    collapsed and duplicate faces."""
    keys = np.floor(vertices / cell_mm).astype(np.int64)
    _, inverse, counts = np.unique(keys, axis=0, return_inverse=True, return_counts=True)
    inverse = inverse.ravel()
    new_v = np.zeros((counts.size, 3))
    np.add.at(new_v, inverse, vertices)
    new_v /= counts[:, None]
    f = inverse[faces]
    keep = (f[:, 0] != f[:, 1]) & (f[:, 1] != f[:, 2]) & (f[:, 0] != f[:, 2])
    f = f[keep]
    _, uniq = np.unique(np.sort(f, axis=1), axis=0, return_index=True)
    f = f[np.sort(uniq)]
    used = np.unique(f)
    remap = -np.ones(counts.size, dtype=np.int64)
    remap[used] = np.arange(used.size)
    return new_v[used], remap[f]


def bone_mesh(
    volume: Any,
    *,
    threshold_hu: float = 200.0,
    max_vertices: int = 60000,
    step_size: int | None = None,
) -> Mesh:
    """Bone iso-surface of ``volume`` (CTVolume) at ``threshold_hu`` in LPS mm.

    ``step_size`` forces the marching-cubes step (voxels); by default it is chosen from the
    number of bone-surface voxels so the result fits ``max_vertices``. Raises ValueError
    when no voxel reaches the threshold.
    """
    from skimage.measure import marching_cubes

    array = np.asarray(volume.array, dtype=np.float32)
    affine = np.asarray(volume.affine, dtype=np.float64)
    if array.ndim != 3 or min(array.shape) < 2:
        raise ValueError(f"CT array must be 3-D with >= 2 voxels per axis, got {array.shape}")
    if max_vertices < 100:
        raise ValueError("max_vertices must be at least 100")
    bone = array >= threshold_hu
    if not bone.any():
        raise ValueError(f"no voxel reaches the bone threshold of {threshold_hu:g} HU")
    if bone.all():
        raise ValueError(f"every voxel is above {threshold_hu:g} HU: no bone surface")
    # pad with a low value so surfaces touching the volume border are closed
    low = min(float(array.min()), threshold_hu - 1.0)
    padded = np.pad(array, 1, mode="constant", constant_values=low)
    if step_size is None:
        interior = bone.copy()
        interior[1:-1, 1:-1, 1:-1] &= (
            bone[:-2, 1:-1, 1:-1]
            & bone[2:, 1:-1, 1:-1]
            & bone[1:-1, :-2, 1:-1]
            & bone[1:-1, 2:, 1:-1]
            & bone[1:-1, 1:-1, :-2]
            & bone[1:-1, 1:-1, 2:]
        )
        surface_voxels = int(bone.sum() - interior[1:-1, 1:-1, 1:-1].sum())
        step = max(1, math.ceil(math.sqrt(1.2 * surface_voxels / max_vertices)))
    else:
        step = max(1, int(step_size))
    while True:
        verts, faces, _, _ = marching_cubes(padded, level=float(threshold_hu), step_size=step)
        if verts.shape[0] <= max_vertices or step_size is not None or step >= 8:
            break
        step += 1
    ijk = verts[:, ::-1] - 1.0  # (k, j, i) of the padded array -> (i, j, k)
    world = ijk @ affine[:3, :3].T + affine[:3, 3]
    faces = faces.astype(np.int64)
    # with the (k, j, i) -> (i, j, k) reversal, skimage's winding is outward for a
    # right-handed affine; a mirrored affine flips it
    if np.linalg.det(affine[:3, :3]) < 0:
        faces = faces[:, ::-1]
    if world.shape[0] > max_vertices:
        extent = np.ptp(world, axis=0)
        cell = float(
            np.sqrt(
                (extent[0] * extent[1] + extent[1] * extent[2] + extent[0] * extent[2])
                * 2
                / max_vertices
            )
        )
        for _ in range(20):
            v2, f2 = _cluster(world, faces, cell)
            if v2.shape[0] <= max_vertices:
                break
            cell *= 1.25
        world, faces = v2, f2
    return Mesh(world.astype(np.float32), faces.astype(np.int32))


def signed_volume_mm3(mesh: Mesh) -> float:
    """Signed enclosed volume (positive for outward-wound closed meshes)."""
    v = mesh.vertices.astype(np.float64)[mesh.faces]
    return float(np.einsum("ij,ij->i", v[:, 0], np.cross(v[:, 1], v[:, 2])).sum() / 6.0)
