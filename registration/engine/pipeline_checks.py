"""The self-checks of a final pose in :func:`registration.engine.pipeline.register`: how
much CT bone it puts in view, where that bone lies in depth, how well the network's bone
mask and the local structure agree with it, and the restarts' consistency.

Poses ``T_cam_from_world`` map CT LPS mm to camera mm; depths are camera z in mm; masks
live on the square refinement image (or a coarse ``n x n`` grid of it).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import cv2
import numpy as np
import torch

from geometry.camera import downsampled_K, project
from registration.engine.quality import (
    check_bone_depth,
    check_depth_rivals,
    check_local_similarity,
    check_mask_agreement,
    check_pose,
    check_restarts,
    check_similarity,
    voxel_edges_mm,
)
from registration.engine.refine_similarity import local_similarity

if TYPE_CHECKING:
    from registration.engine.pipeline_stages import RegistrationState
    from registration.engine.restart_check import RestartCheck


def bone_in_view(
    renderer, T: np.ndarray, K: np.ndarray, size: int, valid: np.ndarray, n: int = 32
) -> tuple[float, np.ndarray, np.ndarray]:
    """(fraction of valid pixels whose ray crosses CT bone at pose ``T``, that bone mask and
    the valid mask, both on an ``n x n`` grid of the square ``size`` image)."""
    with torch.no_grad():
        b = renderer.render(
            torch.as_tensor(T[None], dtype=torch.float32),
            torch.as_tensor(downsampled_K(K, size / n), dtype=torch.float32),
            n,
            n,
            samples_per_ray=32,
            bone_only=True,
        )[0].cpu().numpy()
    vsmall = cv2.resize(np.asarray(valid, np.float32), (n, n), interpolation=cv2.INTER_AREA) > 0.5
    bone = (b > 1e-3) & vsmall
    return float(bone.sum() / max(vsmall.sum(), 1)), bone, vsmall


def bone_depth_in_view(
    points_lps: np.ndarray, T: np.ndarray, K: np.ndarray, valid: np.ndarray
) -> tuple[float, float] | None:
    """Nearest and farthest camera depth (mm) of the ``points_lps`` (N, 3) that project
    onto a ``valid`` pixel of the image with intrinsics ``K`` at pose ``T``
    (``T_cam_from_world``); None when none does."""
    pts = np.asarray(points_lps, np.float64)
    z = pts @ T[2, :3] + T[2, 3]
    pts, z = pts[z > 1e-6], z[z > 1e-6]  # behind the source nothing projects
    u, v = np.floor(project(pts, K, T) + 0.5).astype(np.int64).T
    h, w = valid.shape
    inside = (u >= 0) & (u < w) & (v >= 0) & (v < h)
    inside[inside] = np.asarray(valid, bool)[v[inside], u[inside]]
    if not inside.any():
        return None
    return float(z[inside].min()), float(z[inside].max())


def mask_dice(bone_prob: np.ndarray, bone_ct: np.ndarray, valid: np.ndarray) -> float:
    """Dice overlap of the network's bone mask (prob > 0.5, resized to ``bone_ct``'s grid)
    and the CT bone projected at the final pose, inside ``valid``."""
    n = bone_ct.shape[0]
    net = cv2.resize(bone_prob.astype(np.float32), (n, n), interpolation=cv2.INTER_AREA) > 0.5
    net &= valid
    denom = net.sum() + bone_ct.sum()
    return float(2.0 * (net & bone_ct).sum() / denom) if denom else 0.0


def voxel_size_mm(volume) -> float | None:
    """Geometric mean (mm) of the CT's voxel edges from its affine; None without one."""
    edges = voxel_edges_mm(volume)
    return float(np.prod(edges) ** (1.0 / 3.0)) if edges else None


def check_final(st: RegistrationState, T_final: np.ndarray, similarity: float,
                restarts: RestartCheck | None) -> None:
    """Quality figures of a final pose (the ``quality`` stage), which becomes the result's
    pose and similarity; raises QualityError when a self-check fails."""
    th, renderer, K = st.opt.thresholds, st.renderer, st.ref_img.K
    t0 = time.perf_counter()
    biv, bone_ct, vsmall = bone_in_view(renderer, T_final, K, st.rsize, st.ref_img.valid)
    dice = mask_dice(st.bone_prob, bone_ct, vsmall) if st.bone_prob is not None else None
    local = local_similarity(renderer, st.img_t, K, T_final, st.val_t)
    st.clock("quality", t0, bone_in_view_fraction=round(biv, 4),
             mask_dice=None if dice is None else round(dice, 4),
             local_similarity=round(local, 4))
    st.res.T_cam_from_world = T_final
    st.res.similarity = similarity
    sdd = st.camera.source_to_detector_mm
    check_pose(T_final, st.pivot, sdd, th)
    check_bone_depth(bone_depth_in_view(renderer.bone_points(), T_final, K, st.ref_img.valid),
                     sdd, th)
    check_similarity(similarity, biv, th)
    check_local_similarity(local, th)
    if dice is not None:
        check_mask_agreement(dice, th)
    if restarts is not None:
        check_restarts(restarts.spread_mm, restarts.similarities,
                       restarts.reference_similarity, th, pose_similarity=similarity)
        if restarts.depth is not None:
            check_depth_rivals(restarts.depth, th, voxel_mm=voxel_size_mm(st.volume))
