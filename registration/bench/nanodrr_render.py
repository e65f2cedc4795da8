"""Line integrals rendered by nanodrr (an independent ray marcher), in our frames.

Frames: our world is LPS mm and our pose ``T_cam_from_world`` maps it to an OpenCV
camera (+x columns, +y rows, +z source -> detector; pixel centre of the top-left pixel at
(0, 0)). nanodrr's ``Subject`` world is whatever its voxel-to-world affine says (we hand it
our LPS affine, so it is LPS), its ``rt_inv`` maps camera -> world, and its detector ray
for pixel (i, j) goes through ``K_n^-1 (i + 0.5, j + 0.5, 1)``: its pixel coordinates are
ours plus 0.5, so its principal point is ours plus 0.5. Output: (H, W) float32 line
integrals of nanodrr's attenuation (1/mm, its HU -> mu conversion) times mm.
"""

from __future__ import annotations

import numpy as np
import torch
from nanodrr.data import Subject
from nanodrr.drr.renderer import render

#: detector rows rendered per call: bounds the (samples x rays x 3) sample tensor
ROW_CHUNK = 64


def subject_from_volume(array_kji: np.ndarray, affine_lps: np.ndarray) -> Subject:
    """A nanodrr ``Subject`` of a CT: ``array_kji`` (slices, rows, cols) in HU and the 4x4
    affine mapping (i, j, k, 1) to LPS mm. nanodrr samples its (D, H, W) = (k, j, i) grid at
    voxel index (i, j, k), so the world of the subject is LPS."""
    arr = torch.from_numpy(np.ascontiguousarray(array_kji, dtype=np.float32))[None, None]
    v2w64 = torch.from_numpy(np.asarray(affine_lps, dtype=np.float64))
    D, H, W = arr.shape[-3:]
    size = torch.tensor([W, H, D], dtype=torch.float32)
    v2g = torch.eye(4)
    v2g[:3, :3] = torch.diag(2.0 / size)
    v2g[:3, 3] = 1.0 / size - 1.0
    centre = v2w64[:3, :3] @ torch.tensor([(W - 1) / 2, (H - 1) / 2, (D - 1) / 2],
                                            dtype=torch.float64) + v2w64[:3, 3]
    return Subject(arr, torch.zeros_like(arr), v2w64.float(), v2w64.inverse().float(), v2g,
                   centre.float(), max_label=0)


def nanodrr_k_inv(K: np.ndarray) -> torch.Tensor:
    """(1, 3, 3) nanodrr inverse intrinsics for our ``K`` (principal point + 0.5 px)."""
    Kn = np.asarray(K, dtype=np.float64).copy()
    Kn[0, 2] += 0.5
    Kn[1, 2] += 0.5
    return torch.from_numpy(np.linalg.inv(Kn)).float()[None]


def render_line_integral(subject: Subject, K: np.ndarray, width: int, height: int,
                         T_cam_from_world: np.ndarray, sdd_mm: float,
                         n_samples: int = 256) -> np.ndarray:
    """(height, width) float32 line integrals seen by the camera ``K`` at pose
    ``T_cam_from_world`` (LPS mm -> camera mm), rendered by nanodrr's torch backend in
    blocks of :data:`ROW_CHUNK` rows. ``sdd_mm``: where the rays end (beyond the CT)."""
    rt_inv = torch.from_numpy(np.linalg.inv(np.asarray(T_cam_from_world, np.float64))).float()[None]
    sdd = torch.tensor([float(sdd_mm)])
    out = np.zeros((height, width), np.float32)
    with torch.no_grad():
        for r0 in range(0, height, ROW_CHUNK):
            rows = min(ROW_CHUNK, height - r0)
            Kc = np.asarray(K, np.float64).copy()
            Kc[1, 2] -= r0  # the block's first row is row 0 of its own camera
            img = render(subject, nanodrr_k_inv(Kc), rt_inv, sdd, rows, width,
                         n_samples=n_samples, backend="torch")
            out[r0:r0 + rows] = img[0, 0].numpy()
    return out
