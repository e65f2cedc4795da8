"""Intensity-based pose refinement with the differentiable DRR renderer.

Starting from a pose (e.g. from PnP), optimise a 6-DoF increment so that the DRR matches
the X-ray: weighted multi-scale NCC (optionally plus gradient correlation; the similarity
is :mod:`registration.engine.refine_similarity`), coarse to fine (the DRR is rendered at 1/f of the image size with the intrinsics scaled
accordingly), with Adam on the increment ``(omega in degrees, v in mm)``. Both images are
high-passed the same way before correlating (``HIGHPASS_FRACTION``), and the first coarse
level keeps the depth. The increment acts in the camera frame around a pivot (the bone
centre), so rotations and translations are decoupled:
``x_cam' = R(omega) (x_cam - p) + p + v`` with ``x_cam = T_init X``.
The restart self-check is :mod:`registration.engine.restart_check`, the depth searches
that follow the refinement :mod:`registration.engine.depth_search`.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from geometry.camera import backproject, downsampled_K
from geometry.rigid import orthonormalised, se3_exp
from registration.engine.refine_similarity import (
    batch_similarity,
    bone_weight_from_drr,
    pose_similarity,
    similarities_at_level,
)
from registration.engine.similarity import downsample


@dataclass
class RefineLevel:
    factor: int  # render at image_size / factor
    iterations: int
    lr: float  # Adam step, degrees / mm
    samples_per_ray: int = 96
    depth: bool = True  # False: the pivot's distance from the source is kept at this level


# coarse with the depth frozen first (depth is only seen through magnification and drifts
# while the in-plane pose is still far off), then all 6 DoF
DEFAULT_LEVELS = (
    RefineLevel(4, 30, 2.0, 48, depth=False),
    RefineLevel(4, 30, 1.5, 48),
    RefineLevel(2, 25, 0.7, 64),
    RefineLevel(1, 10, 0.2, 80),
)


@dataclass
class RefineResult:
    T_cam_from_world: np.ndarray
    similarity: float
    initial_similarity: float
    iterations: int
    seconds: float
    history: list[dict] = field(default_factory=list)


def increment(theta: torch.Tensor, pivot_cam: torch.Tensor) -> torch.Tensor:
    """Camera-frame increment(s) ``(..., 4, 4)`` for ``theta = (omega deg (3), v mm (3))``
    ``(..., 6)`` about ``pivot_cam`` ``(..., 3)`` (camera mm; broadcast against ``theta``):
    ``x' = R(omega) (x - p) + p + v``. Batched: one call for a whole set of poses."""
    omega = theta[..., :3] * (math.pi / 180.0)
    R = se3_exp(torch.cat([omega, torch.zeros_like(omega)], dim=-1))[..., :3, :3]
    p = pivot_cam.to(theta.dtype).expand_as(theta[..., 3:])
    t = p - (R @ p.unsqueeze(-1)).squeeze(-1) + theta[..., 3:]
    bottom = torch.zeros(*theta.shape[:-1], 1, 4, dtype=theta.dtype, device=theta.device)
    bottom[..., 0, 3] = 1.0
    return torch.cat([torch.cat([R, t.unsqueeze(-1)], dim=-1), bottom], dim=-2)



def view_pivot(
    T_cam_from_world: np.ndarray,
    K: np.ndarray,
    valid: torch.Tensor | np.ndarray,
    pivot_world: np.ndarray,
    weight: torch.Tensor | np.ndarray | None = None,
) -> np.ndarray:
    """The pivot for an image that may show only part of the bone: the point on the ray
    through the (weighted) centroid of the ``valid`` pixels, at the camera depth of
    ``pivot_world`` (the bone centre) in pose ``T_cam_from_world``. LPS mm, (3,).

    Rotations about, and depth moves along the ray through, the bone centre shift a
    close-up's visible part sideways; about this point they keep it in view."""
    w = torch.as_tensor(valid).double()
    if weight is not None:
        w = w * torch.as_tensor(weight).double()
    total = float(w.sum())
    T = np.asarray(T_cam_from_world, dtype=np.float64)
    pw = np.asarray(pivot_world, dtype=np.float64)
    z = float((T[:3, :3] @ pw + T[:3, 3])[2])
    if total <= 0 or z <= 0:
        return pw.copy()
    h, wd = w.shape
    u = float(w.sum(0) @ torch.arange(wd, dtype=torch.float64)) / total
    v = float(w.sum(1) @ torch.arange(h, dtype=torch.float64)) / total
    return backproject(np.array([[u, v]]), z, K, T)[0]


def refine_pose(
    renderer,
    image: torch.Tensor,
    K: np.ndarray,
    T_init: np.ndarray,
    *,
    valid: torch.Tensor | None = None,
    weight: torch.Tensor | None = None,
    pivot_world: np.ndarray | None = None,
    levels: tuple[RefineLevel, ...] = DEFAULT_LEVELS,
    time_budget_s: float | None = None,
    patience: int = 10,
    optimise_depth: bool = True,
) -> RefineResult:
    """Refine ``T_init`` (4x4 ``T_cam_from_world``) against ``image`` (H, W) line integrals.

    ``K`` is the image's intrinsics; ``valid`` masks padding/collimator; ``weight`` is a
    bone weighting map (default: from the bone-only DRR at ``T_init``); ``pivot_world`` is
    the rotation centre in LPS mm (default: 700 mm along the optical axis; pass the bone
    centre).
    A level stops early (after at least half its iterations) when ``patience`` iterations
    bring no gain of 1e-5.
    With ``optimise_depth=False`` the pivot's distance from the source (camera z) is kept
    from ``T_init`` (5 DoF): in one view depth is only seen through magnification and the
    similarity optimum can drift along it (one measured case: in-plane 16 -> 1.7 mm while
    depth 5 -> 21 mm). Over 12 held-out images 6 DoF was better on average, hence the
    default.
    Returns the best pose seen.
    """
    return refine_poses(renderer, image, K, [T_init], valid=valid, weight=weight,
                        pivot_world=pivot_world, levels=levels, time_budget_s=time_budget_s,
                        patience=patience, optimise_depth=optimise_depth)[0]


def refine_poses(
    renderer,
    image: torch.Tensor,
    K: np.ndarray,
    T_inits: list[np.ndarray],
    *,
    valid: torch.Tensor | None = None,
    weight: torch.Tensor | None = None,
    pivot_world: np.ndarray | None = None,
    levels: tuple[RefineLevel, ...] = DEFAULT_LEVELS,
    time_budget_s: float | None = None,
    patience: int = 10,
    optimise_depth: bool = True,
) -> list[RefineResult]:
    """:func:`refine_pose` for several starts at once: one batch of DRRs per Adam step.

    Each start keeps its own increment, Adam state (element-wise, so independent of the
    others), best pose and early stop; a start that has stopped is still rendered while
    the others go on but no longer counts. With ``weight`` given, every result therefore
    equals that of refining its start alone; the default weight is the bone weight at the
    first start, shared by all. ``seconds`` is the whole batch's.
    """
    t0 = time.perf_counter()
    img = torch.as_tensor(image, dtype=torch.float32)
    H, W = img.shape
    val = torch.ones_like(img) if valid is None else torch.as_tensor(valid).float()
    T0s = torch.stack([torch.as_tensor(np.asarray(T, dtype=np.float64), dtype=torch.float32)
                       for T in T_inits])  # (n, 4, 4)
    n = len(T0s)
    if weight is None:
        weight = bone_weight_from_drr(renderer, np.asarray(T_inits[0]), K, (H, W))
    wgt = torch.as_tensor(weight, dtype=torch.float32) * val
    if pivot_world is None:
        pivots = torch.tensor([0.0, 0.0, 700.0]).expand(n, 3)
    else:
        pw = torch.as_tensor(np.asarray(pivot_world, dtype=np.float64), dtype=torch.float32)
        pivots = T0s[:, :3, :3] @ pw + T0s[:, :3, 3]  # (n, 3) camera mm
    batch = _Batch(T0s, pivots, n)
    for li, lvl in enumerate(levels):
        scene = _level_scene(img, wgt, val, K, lvl.factor)
        if not _refine_level(renderer, scene, batch, li, lvl, patience, optimise_depth,
                             (t0, time_budget_s)):
            break
    results = []
    for b in range(n):
        # final similarity at the finest level actually used
        with torch.no_grad():
            T_best = increment(batch.best_theta[b], pivots[b]) @ T0s[b]
        best_sim = pose_similarity(renderer, img, K, T_best.numpy(), wgt, levels[-1])
        T_out = orthonormalised(T_best.double().numpy())  # float32 drift
        results.append(RefineResult(T_out, best_sim, batch.sim0[b], batch.n_iter[b],
                                    time.perf_counter() - t0, batch.histories[b]))
    return results


class _Batch:
    """What :func:`refine_poses` keeps per start (``n`` starts): the start poses ``T0s``
    (n, 4, 4) and pivots (n, 3) camera mm, the best increment (n, 6) deg / mm, the first
    similarity, the iterations counted and the history."""

    def __init__(self, T0s: torch.Tensor, pivots: torch.Tensor, n: int) -> None:
        self.T0s, self.pivots, self.n = T0s, pivots, n
        self.best_theta = torch.zeros(n, 6, dtype=torch.float32)
        self.sim0 = [float("nan")] * n
        self.n_iter = [0] * n
        self.histories: list[list[dict]] = [[] for _ in range(n)]


def _level_scene(img: torch.Tensor, wgt: torch.Tensor, val: torch.Tensor, K: np.ndarray,
                 f: int) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """``(image, pixel weight, intrinsics)`` of one refinement level: ``img`` (H, W),
    weight and valid mask downsampled by ``f``, the weight cut to the blocks wholly valid."""
    H = img.shape[0]
    img_l = downsample(img, f) if f > 1 else img
    w_l = downsample(wgt, f) if f > 1 else wgt
    # make the mask crisp again where padding was averaged in
    w_l = w_l * (downsample(val, f) > 0.99).float() if f > 1 else w_l
    return img_l, w_l, downsampled_K(K, H / img_l.shape[0])


def _refine_level(renderer, scene: tuple[torch.Tensor, torch.Tensor, np.ndarray],
                  batch: _Batch, li: int, lvl: RefineLevel, patience: int,
                  optimise_depth: bool, budget: tuple[float, float | None]) -> bool:
    """Adam at one level (``li``-th) from ``batch.best_theta``, updating the batch's
    bookkeeping; False when the time ran out (``budget``: the ``perf_counter`` start and
    the seconds allowed, None for no limit)."""
    img_l, w_l, K_l = scene
    n = batch.n
    theta = batch.best_theta.clone().requires_grad_(True)
    opt = torch.optim.Adam([theta], lr=lvl.lr)
    depth_mask = torch.ones(6)
    if not optimise_depth or not lvl.depth:
        depth_mask[5] = 0.0
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(
        opt, T_max=max(lvl.iterations, 1), eta_min=lvl.lr * 0.1
    )
    t0, time_budget_s = budget
    level_best = [-math.inf] * n
    last_gain = [0] * n
    running = [True] * n
    for it in range(lvl.iterations):
        poses = increment(theta, batch.pivots) @ batch.T0s
        sims = similarities_at_level(renderer, poses, K_l, img_l, w_l, lvl.samples_per_ray)
        for b in range(n):
            if not running[b]:
                continue
            s = float(sims[b].detach())
            if li == 0 and it == 0:
                batch.sim0[b] = s
            if s > level_best[b] + 1e-5:
                last_gain[b] = it
            if s > level_best[b]:
                level_best[b] = s
                batch.best_theta[b] = theta[b].detach()
            if it - last_gain[b] >= patience and it >= lvl.iterations // 2:
                running[b] = False
                continue
            batch.n_iter[b] += 1
            if it % 5 == 0:
                batch.histories[b].append({"level": li, "iter": it, "similarity": s})
        if not any(running):
            break
        opt.zero_grad()
        (-sims.sum()).backward()
        theta.grad.mul_(depth_mask)
        opt.step()
        sched.step()
        if time_budget_s is not None and time.perf_counter() - t0 > time_budget_s:
            return False
    return True


def adam_on_increments(
    renderer,
    best_theta: torch.Tensor,
    best_sim: torch.Tensor,
    T0: torch.Tensor,
    pivot_cam: torch.Tensor,
    K: np.ndarray,
    image: torch.Tensor,
    weight: torch.Tensor,
    samples_per_ray: int,
    iterations: int,
    lr: float,
    mask: torch.Tensor,
) -> None:
    """Adam on a batch of pose increments ``(B, 6)`` (deg, mm; :func:`increment` about
    ``pivot_cam``, applied to ``T0``), starting from ``best_theta``; each candidate's
    similarity depends only on its own increment, so the summed objective refines them
    independently. ``mask`` (6,) zeroes the gradient of the DoF kept fixed. Updates
    ``best_theta`` and ``best_sim`` (B,) in place wherever a step matched better."""
    T0f, pcf = T0.float(), pivot_cam.float()
    th = best_theta.detach().float().clone().requires_grad_(True)
    opt = torch.optim.Adam([th], lr=lr)
    for _ in range(iterations):
        poses = increment(th, pcf) @ T0f
        sims = batch_similarity(renderer, poses, K, image, weight, samples_per_ray)
        better = sims.detach().to(best_sim.dtype) > best_sim
        best_sim[better] = sims.detach().to(best_sim.dtype)[better]
        best_theta[better] = th.detach().to(best_theta.dtype)[better]
        opt.zero_grad()
        (-sims.sum()).backward()
        th.grad.mul_(mask)
        opt.step()
