"""The similarity the pose refinement maximises, and the figures the self-checks read.

The DRR at a pose is compared with the X-ray (line integrals, (H, W)) by weighted,
high-passed NCC (optionally plus gradient correlation, ``GC_WEIGHT``), averaged over
scales; at a refinement level both are downsampled by the level's factor and the
intrinsics scaled to match (:func:`geometry.camera.downsampled_K`). Poses are ``T_cam_from_world`` (world =
LPS mm, camera mm); intrinsics ``K`` in pixels. Similarities lie in [-1, 1].
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

from geometry.camera import downsampled_K
from registration.engine.similarity import combined_similarity, downsample, local_structure_ncc

if TYPE_CHECKING:
    from registration.engine.refine import RefineLevel


# weight of gradient correlation against NCC in the similarity: 0 (high-passed NCC alone)
# measured best on held-out simulated X-rays (median mTRE over 3 x 12 images, rough start:
# 0.5 -> 2.9 / 11.0 / 5.9 mm, 0.3 -> 2.4 / 6.6 / -, 0.15 -> 2.3, 0 -> 1.8 / 3.2 / 0.9 mm)
GC_WEIGHT = 0.0
# both images are high-passed (Gaussian sigma = this fraction of the level's size) before
# NCC/GC: scatter, heel effect and soft tissue vary slowly and biased the optimum
HIGHPASS_FRACTION: float | None = 0.1


def highpass_sigma_px(h: int, w: int) -> float | None:
    """The high-pass Gaussian sigma (pixels) for an ``h x w`` image, or None when off."""
    return None if HIGHPASS_FRACTION is None else HIGHPASS_FRACTION * min(h, w)


def batch_similarity(
    renderer,
    poses: torch.Tensor,
    K: np.ndarray,
    image: torch.Tensor,
    weight: torch.Tensor | None,
    samples_per_ray: int,
    *,
    scales: tuple[int, ...] = (1,),
) -> torch.Tensor:
    """Similarity of the DRR at each pose ``(B, 4, 4)`` (``T_cam_from_world``) with
    ``image`` ``(h, w)`` whose intrinsics are ``K`` -> ``(B,)``: weighted, high-passed NCC
    (+ ``GC_WEIGHT`` gradient correlation) averaged over ``scales``; differentiable in the
    poses. The DRR is rendered in the poses' dtype on the renderer's device and compared
    in the image's dtype on the image's device (a GPU renderer's DRRs come to the image)."""
    h, w = image.shape
    hp = highpass_sigma_px(h, w)
    drr = renderer.render(poses, torch.as_tensor(K, dtype=poses.dtype), h, w,
                          samples_per_ray=samples_per_ray)
    drr = drr.to(device=image.device, dtype=image.dtype)
    return combined_similarity(image, drr, weight, gc_weight=GC_WEIGHT,
                               scales=scales, highpass_sigma_px=hp)


def similarities_at_level(renderer, poses: torch.Tensor, K: np.ndarray, img_l: torch.Tensor,
                          w_l: torch.Tensor, spr: int) -> torch.Tensor:
    """Similarity of the DRR at each pose ``(B, 4, 4)`` with ``img_l`` at one refinement
    level -> ``(B,)`` (:func:`batch_similarity`, two scales from 48 px on)."""
    scales = (1, 2) if min(img_l.shape) >= 48 else (1,)
    return batch_similarity(renderer, poses, K, img_l, w_l, spr, scales=scales)


def bone_weight_from_drr(
    renderer,
    T: np.ndarray,
    K: np.ndarray,
    size: tuple[int, int],
    factor: int = 4,
    floor: float = 0.3,
) -> torch.Tensor:
    """A soft bone weight map ``(H, W)`` (on the CPU, where the pipeline keeps its images)
    from the bone-only DRR at pose ``T`` (dilated)."""
    H, W = size
    h, w = max(4, H // factor), max(4, W // factor)
    with torch.no_grad():
        b = renderer.render(
            torch.as_tensor(T[None], dtype=torch.float32),
            torch.as_tensor(downsampled_K(K, H / h), dtype=torch.float32),
            h,
            w,
            samples_per_ray=48,
            bone_only=True,
        )[0].cpu()
    m = (b > 0.05 * float(b.max().clamp_min(1e-6))).float()
    m = F.max_pool2d(m[None, None], 5, stride=1, padding=2)
    m = F.interpolate(m, size=(H, W), mode="bilinear", align_corners=False)[0, 0]
    return floor + (1 - floor) * m


def level_similarity(renderer, image: torch.Tensor, K: np.ndarray, T: np.ndarray,
                     weight_l: torch.Tensor, factor: int, samples_per_ray: int) -> float:
    """Similarity (no gradient) of the DRR at ``T`` (``T_cam_from_world``) with ``image``
    (H, W, intrinsics ``K``) downsampled by ``factor``; ``weight_l`` is the pixel weight at
    that downsampled size."""
    img_l = downsample(torch.as_tensor(image, dtype=torch.float32), factor)
    K_l = downsampled_K(K, image.shape[0] / img_l.shape[0])
    with torch.no_grad():
        poses = torch.as_tensor(T, dtype=torch.float32)[None]
        return float(similarities_at_level(renderer, poses, K_l, img_l, weight_l,
                                           samples_per_ray)[0])


def pose_similarity(renderer, image: torch.Tensor, K: np.ndarray, T: np.ndarray,
                    weight: torch.Tensor, level: RefineLevel) -> float:
    """Similarity of the DRR at ``T`` (``T_cam_from_world``) with ``image`` (H, W) at a
    refinement level: both downsampled by ``level.factor``, ``weight`` (H, W) the pixel
    weight (valid mask times bone weight), as
    :func:`~registration.engine.refine.refine_pose` reports it."""
    w_l = downsample(torch.as_tensor(weight, dtype=torch.float32), level.factor)
    return level_similarity(renderer, image, K, T, w_l, level.factor, level.samples_per_ray)


# the windows of the local similarity: Gaussian sigma as a fraction of the image size
# (4 px at the 128 px refinement size)
LOCAL_WINDOW_FRACTION = 1.0 / 32.0


def local_similarity(renderer, image: torch.Tensor, K: np.ndarray, T: np.ndarray,
                     valid: torch.Tensor | None = None, samples_per_ray: int = 80) -> float:
    """How well the CT's structure lines up with the X-ray, window by window, at pose ``T``
    (``T_cam_from_world``): :func:`~registration.engine.similarity.local_structure_ncc`
    of the DRR and ``image`` (H, W, intrinsics ``K``), both high-passed as in the
    refinement, weighted by the CT bone at ``T`` (:func:`bone_weight_from_drr`) inside
    ``valid``. It needs nothing from the network, so it checks the pose independently of
    it. In [-1, 1]."""
    img = torch.as_tensor(image, dtype=torch.float32)
    h, w = img.shape
    weight = bone_weight_from_drr(renderer, T, K, (h, w))
    if valid is not None:
        weight = weight * torch.as_tensor(valid).float()
    with torch.no_grad():
        drr = renderer.render(torch.as_tensor(T[None], dtype=torch.float32),
                              torch.as_tensor(K, dtype=torch.float32), h, w,
                              samples_per_ray=samples_per_ray)[0].to(img.device).float()
        return float(local_structure_ncc(img, drr, weight,
                                         window_sigma_px=LOCAL_WINDOW_FRACTION * min(h, w),
                                         highpass_sigma_px=highpass_sigma_px(h, w))[0])
