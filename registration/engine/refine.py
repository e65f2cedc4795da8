"""Intensity-based pose refinement with the differentiable DRR renderer.

Starting from a pose (e.g. from PnP), optimise a 6-DoF increment so that the DRR matches
the X-ray: weighted multi-scale NCC (optionally plus gradient correlation, ``GC_WEIGHT``),
coarse to fine (the DRR is rendered at 1/f of the image size with the intrinsics scaled
accordingly), with Adam on the increment ``(omega in degrees, v in mm)``. Both images are
high-passed the same way before correlating (``HIGHPASS_FRACTION``), and the first coarse
level keeps the depth. The increment acts in the camera frame around a pivot (the bone
centre), so rotations and translations are decoupled:
``x_cam' = R(omega) (x_cam - p) + p + v`` with ``x_cam = T_init X``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from geometry.camera import backproject
from geometry.rigid import orthonormalised, se3_exp
from registration.engine.similarity import combined_similarity, downsample, local_structure_ncc


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


def scaled_K(K: np.ndarray, factor: float) -> np.ndarray:
    """Intrinsics of the image downsampled by ``factor`` (pixel centres at integers)."""
    K2 = np.array(K, dtype=np.float64).copy()
    a = 1.0 / factor
    K2[0, 0] *= a
    K2[0, 1] *= a
    K2[1, 1] *= a
    K2[0, 2] = (K2[0, 2] + 0.5) * a - 0.5
    K2[1, 2] = (K2[1, 2] + 0.5) * a - 0.5
    return K2


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


def _similarities_at(renderer, poses: torch.Tensor, K: np.ndarray, img_l: torch.Tensor,
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
            torch.as_tensor(scaled_K(K, H / h), dtype=torch.float32),
            h,
            w,
            samples_per_ray=48,
            bone_only=True,
        )[0].cpu()
    m = (b > 0.05 * float(b.max().clamp_min(1e-6))).float()
    m = F.max_pool2d(m[None, None], 5, stride=1, padding=2)
    m = F.interpolate(m, size=(H, W), mode="bilinear", align_corners=False)[0, 0]
    return floor + (1 - floor) * m


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
    histories: list[list[dict]] = [[] for _ in T0s]
    n_iter = [0] * n
    sim0 = [float("nan")] * n
    best_theta = torch.zeros(n, 6, dtype=torch.float32)
    out_of_time = False
    for li, lvl in enumerate(levels):
        f = lvl.factor
        img_l = downsample(img, f) if f > 1 else img
        w_l = downsample(wgt, f) if f > 1 else wgt
        # make the mask crisp again where padding was averaged in
        w_l = w_l * (downsample(val, f) > 0.99).float() if f > 1 else w_l
        K_l = scaled_K(K, H / img_l.shape[0])
        theta = best_theta.clone().requires_grad_(True)
        opt = torch.optim.Adam([theta], lr=lvl.lr)
        depth_mask = torch.ones(6)
        if not optimise_depth or not lvl.depth:
            depth_mask[5] = 0.0
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(
            opt, T_max=max(lvl.iterations, 1), eta_min=lvl.lr * 0.1
        )
        level_best = [-math.inf] * n
        last_gain = [0] * n
        running = [True] * n
        for it in range(lvl.iterations):
            poses = increment(theta, pivots) @ T0s
            sims = _similarities_at(renderer, poses, K_l, img_l, w_l, lvl.samples_per_ray)
            for b in range(n):
                if not running[b]:
                    continue
                s = float(sims[b].detach())
                if li == 0 and it == 0:
                    sim0[b] = s
                if s > level_best[b] + 1e-5:
                    last_gain[b] = it
                if s > level_best[b]:
                    level_best[b] = s
                    best_theta[b] = theta[b].detach()
                if it - last_gain[b] >= patience and it >= lvl.iterations // 2:
                    running[b] = False
                    continue
                n_iter[b] += 1
                if it % 5 == 0:
                    histories[b].append({"level": li, "iter": it, "similarity": s})
            if not any(running):
                break
            opt.zero_grad()
            (-sims.sum()).backward()
            theta.grad.mul_(depth_mask)
            opt.step()
            sched.step()
            if time_budget_s is not None and time.perf_counter() - t0 > time_budget_s:
                out_of_time = True
                break
        if out_of_time:
            break
    results = []
    for b in range(n):
        # final similarity at the finest level actually used
        with torch.no_grad():
            T_best = increment(best_theta[b], pivots[b]) @ T0s[b]
        best_sim = pose_similarity(renderer, img, K, T_best.numpy(), wgt, levels[-1])
        T_out = orthonormalised(T_best.double().numpy())  # float32 drift
        results.append(RefineResult(T_out, best_sim, sim0[b], n_iter[b],
                                    time.perf_counter() - t0, histories[b]))
    return results


def level_similarity(renderer, image: torch.Tensor, K: np.ndarray, T: np.ndarray,
                     weight_l: torch.Tensor, factor: int, samples_per_ray: int) -> float:
    """Similarity (no gradient) of the DRR at ``T`` (``T_cam_from_world``) with ``image``
    (H, W, intrinsics ``K``) downsampled by ``factor``; ``weight_l`` is the pixel weight at
    that downsampled size."""
    img_l = downsample(torch.as_tensor(image, dtype=torch.float32), factor)
    K_l = scaled_K(K, image.shape[0] / img_l.shape[0])
    with torch.no_grad():
        return float(_similarities_at(renderer, torch.as_tensor(T, dtype=torch.float32)[None],
                                      K_l, img_l, weight_l, samples_per_ray)[0])


def pose_similarity(renderer, image: torch.Tensor, K: np.ndarray, T: np.ndarray,
                    weight: torch.Tensor, level: RefineLevel) -> float:
    """Similarity of the DRR at ``T`` (``T_cam_from_world``) with ``image`` (H, W) at a
    refinement level: both downsampled by ``level.factor``, ``weight`` (H, W) the pixel
    weight (valid mask times bone weight), as :func:`refine_pose` reports it."""
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


RESTART_LEVELS = (
    RefineLevel(4, 20, 2.0, 48),
    RefineLevel(2, 10, 0.7, 64),
)


@dataclass
class RestartCheck:
    """Re-refinements from perturbed copies of a refined pose.

    ``spread_mm``: for each restart, the mean distance (mm) between where the restart and
    the refined pose put a set of points around the pivot (pivot +- ``radius_mm`` along the
    three world axes); ``poses``: the restarts' ``T_cam_from_world``; ``similarities``:
    each restart's similarity and ``reference_similarity`` the refined pose's, all at the
    restarts' finest level with one pixel weight, so they compare.
    """

    spread_mm: list[float]
    similarities: list[float]
    poses: list[np.ndarray]
    reference_similarity: float = math.nan

    def best_rival(self, min_gain: float) -> int | None:
        """Index of the restart that matches the X-ray best, if it beats the refined pose
        by more than ``min_gain``, else None: the refinement stopped short of the optimum."""
        if not self.similarities or not math.isfinite(self.reference_similarity):
            return None
        i = int(np.argmax(self.similarities))
        return i if self.similarities[i] > self.reference_similarity + min_gain else None


def pose_distance_mm(T_a: np.ndarray, T_b: np.ndarray, centre: np.ndarray,
                     radius_mm: float = 50.0) -> float:
    """Mean distance (camera frame, mm) between the images under ``T_a`` and ``T_b`` of the
    six points ``centre +- radius_mm`` along the world axes (LPS mm)."""
    c = np.asarray(centre, dtype=np.float64).reshape(3)
    pts = np.concatenate([c + radius_mm * np.eye(3), c - radius_mm * np.eye(3)])
    Ta, Tb = np.asarray(T_a, np.float64), np.asarray(T_b, np.float64)
    pa = pts @ Ta[:3, :3].T + Ta[:3, 3]
    pb = pts @ Tb[:3, :3].T + Tb[:3, 3]
    return float(np.linalg.norm(pa - pb, axis=1).mean())


def restart_check(
    renderer,
    image: torch.Tensor,
    K: np.ndarray,
    T_refined: np.ndarray,
    *,
    pivot_world: np.ndarray,
    valid: torch.Tensor | None = None,
    weight: torch.Tensor | None = None,
    n_restarts: int = 2,
    rot_deg: float = 4.0,
    depth_mm: float = 15.0,
    in_plane_mm: float = 5.0,
    levels: tuple[RefineLevel, ...] = RESTART_LEVELS,
    seed: int = 0,
    depth_search: bool = True,
    settle: Callable[[np.ndarray], np.ndarray] | None = None,
    settle_beyond_mm: float = 10.0,
) -> RestartCheck:
    """Is ``T_refined`` a well-determined optimum? Perturb it (a rotation of ``rot_deg``
    about a random axis through the pivot, ``depth_mm`` along the camera axis, alternately
    towards and away from the source, and ``in_plane_mm`` sideways; seeded), refine each
    copy again with ``levels`` and measure how far each lands from ``T_refined``.

    A pose at the true optimum attracts the restarts back; a pose on a flat or spurious
    ridge of the similarity (typically a depth drift) lets them land elsewhere, as well or
    better matched (:func:`registration.engine.quality.check_restarts` weighs both). With
    ``depth_search`` each restart ends with :func:`depth_line_search` (+-8 mm), as the
    registration itself does, so that a slow depth convergence is not taken for ambiguity.
    A restart that still lands more than ``settle_beyond_mm`` away is passed to ``settle``
    (``T_cam_from_world`` in and out) when given: the registration's own depth stages
    (e.g. :func:`depth_profile_search`), which the refined pose went through too, so that
    a restart left elsewhere on a flat depth ridge is compared where it settles. Restarts
    that come back cost nothing extra.
    """
    rng = np.random.default_rng(seed)
    T0 = np.asarray(T_refined, dtype=np.float64)
    pw = np.asarray(pivot_world, dtype=np.float64)
    img = torch.as_tensor(image, dtype=torch.float32)
    if weight is None:  # one bone weight for every restart, so that similarities compare
        weight = bone_weight_from_drr(renderer, T0, K, tuple(img.shape))
    val = torch.ones_like(img) if valid is None else torch.as_tensor(valid).float()
    w_all = torch.as_tensor(weight, dtype=torch.float32) * val
    ref_sim = pose_similarity(renderer, img, K, T0, w_all, levels[-1])
    pivot_cam = torch.as_tensor(T0[:3, :3] @ pw + T0[:3, 3], dtype=torch.float64)
    starts = []
    for k in range(n_restarts):
        axis = rng.normal(size=3)
        axis /= np.linalg.norm(axis)
        side = rng.normal(size=2)
        side = side / np.linalg.norm(side) * in_plane_mm
        sign = 1.0 if k % 2 == 0 else -1.0
        theta = torch.as_tensor(
            np.concatenate([axis * rot_deg, [side[0], side[1], sign * depth_mm]]),
            dtype=torch.float64,
        )
        starts.append((increment(theta, pivot_cam) @ torch.as_tensor(T0)).numpy())
    # the restarts are refined together, as one batch of DRRs per step
    refined = refine_poses(renderer, image, K, starts, valid=valid, weight=weight,
                           pivot_world=pw, levels=levels) if starts else []
    spreads, sims, poses = [], [], []
    for rr in refined:
        T_r = rr.T_cam_from_world
        if depth_search:
            ds = depth_line_search(renderer, image, K, T_r, pw, valid=valid, weight=weight,
                                   half_range_mm=8.0, steps=5)
            T_r = ds.T_cam_from_world
        if settle is not None and pose_distance_mm(T_r, T0, pw) > settle_beyond_mm:
            T_r = settle(T_r)
        spreads.append(pose_distance_mm(T_r, T0, pw))
        sims.append(pose_similarity(renderer, img, K, T_r, w_all, levels[-1]))
        poses.append(T_r)
    return RestartCheck(spreads, sims, poses, ref_sim)


@dataclass
class DepthSearch:
    """Result of :func:`depth_line_search`: the pose, the depth move (mm, + away from the
    source) and the similarity before and after."""

    T_cam_from_world: np.ndarray
    moved_mm: float
    similarity_before: float
    similarity: float


def _along_ray(T: torch.Tensor, pivot_cam: torch.Tensor, d_mm: float) -> torch.Tensor:
    """``T`` with the world moved ``d_mm`` along the ray from the source through the pivot
    (the pivot's projection stays put; only the magnification changes)."""
    u = pivot_cam / torch.linalg.norm(pivot_cam)
    D = torch.eye(4, dtype=T.dtype)
    D[:3, 3] = d_mm * u
    return D @ T


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


def depth_line_search(
    renderer,
    image: torch.Tensor,
    K: np.ndarray,
    T: np.ndarray,
    pivot_world: np.ndarray,
    *,
    valid: torch.Tensor | None = None,
    weight: torch.Tensor | None = None,
    half_range_mm: float = 4.0,
    steps: int = 5,
    rounds: int = 2,
    samples_per_ray: int = 64,
) -> DepthSearch:
    """Settle the depth (the one poorly observed degree of freedom of a single view) by a
    1-D search along the ray through the pivot at the full resolution of ``image``.

    The similarity is sampled at ``steps`` depths within ``+- half_range_mm`` and a parabola
    through the best sample and its neighbours gives the new depth; a second round searches
    a quarter of the range around it. Measured on held-out simulated X-rays: the refined
    pose was 1.5-2 mm off in depth but < 0.4 mm sideways, while the similarity peak along
    this line lay within 0.7 mm of the true depth at 256 px.
    """
    img = torch.as_tensor(image, dtype=torch.float32)
    w = torch.ones_like(img) if valid is None else torch.as_tensor(valid).float()
    if weight is not None:
        w = w * torch.as_tensor(weight, dtype=torch.float32)
    T0 = torch.as_tensor(np.asarray(T, dtype=np.float64))
    pivot_cam = T0[:3, :3] @ torch.as_tensor(np.asarray(pivot_world, np.float64)) + T0[:3, 3]

    def score(ds: np.ndarray) -> np.ndarray:
        poses = torch.stack([_along_ray(T0, pivot_cam, float(d)) for d in ds]).float()
        with torch.no_grad():
            return batch_similarity(renderer, poses, K, img, w, samples_per_ray).double().numpy()

    centre, half = 0.0, float(half_range_mm)
    s_before = float(score(np.zeros(1))[0])
    best_d, best_s = 0.0, s_before
    for _ in range(max(1, rounds)):
        ds = centre + np.linspace(-half, half, steps)
        ss = score(ds)
        i = int(np.argmax(ss))
        d_new = float(ds[i])
        vertex = parabola_vertex(ss, i)
        if vertex is not None:
            d_new = float(ds[i] + vertex * (ds[1] - ds[0]))
        if ss[i] > best_s:
            best_d, best_s = float(ds[i]), float(ss[i])
        centre, half = d_new, half / 4.0
    s_new = float(score(np.array([centre]))[0])
    if s_new >= best_s:
        best_d, best_s = centre, s_new
    T_out = _along_ray(T0, pivot_cam, best_d).numpy()
    return DepthSearch(T_out, best_d, s_before, best_s)


def parabola_vertex(values: np.ndarray, i: int) -> float | None:
    """Offset, in sample steps from sample ``i``, of the vertex of the parabola through
    ``values[i - 1 : i + 2]`` (equally spaced samples); None at an end of ``values`` or
    where the three samples do not bend down."""
    if not 0 < i < len(values) - 1:
        return None
    y0, y1, y2 = values[i - 1], values[i], values[i + 1]
    den = y0 - 2 * y1 + y2
    return float(0.5 * (y0 - y2) / den) if den < 0 else None


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


def depth_profile_search(
    renderer,
    image: torch.Tensor,
    K: np.ndarray,
    T: np.ndarray,
    pivot_world: np.ndarray,
    *,
    valid: torch.Tensor | None = None,
    weight: torch.Tensor | None = None,
    step_mm: float = 5.0,
    half_width: int = 2,
    max_shifts: int = 2,
    levels: tuple[tuple[int, int, float], ...] = ((4, 8, 0.5), (2, 4, 0.2)),
    samples_per_ray: int = 64,
) -> DepthSearch:
    """Settle the depth on the similarity's profile: the best match at each depth.

    In a close-up a depth change is matched almost as well once a small rotation and a
    sideways shift follow it, so the optimum lies on a long, nearly flat ridge and the
    gradient refinement can stop anywhere on it (measured: a 208 px close-up ended 10.4 mm
    off in depth, 0.55 deg and 1 mm off otherwise; moving along the bare ray lowers the
    similarity, so :func:`depth_line_search` cannot walk it). Here ``2 half_width + 1``
    copies of ``T`` moved ``step_mm`` apart along the camera axis have their five other DoF
    refined together (one batch of DRRs per Adam step; ``levels``: downsampling factor,
    iterations, step in deg/mm) and are scored at the full size of ``image``. While the
    best copy is at an end of the window, the window moves on from it (``max_shifts``
    times). A parabola through the best copy and its neighbours picks the depth; the pose
    there interpolates the neighbours' increments. Returns ``T`` itself when no copy scores
    higher. On held-out close-ups the profile, unlike the bare ray, peaked at the true depth.
    """
    img = torch.as_tensor(image, dtype=torch.float32)
    val = torch.ones_like(img) if valid is None else torch.as_tensor(valid).float()
    w = val if weight is None else val * torch.as_tensor(weight, dtype=torch.float32)
    T0 = torch.as_tensor(np.asarray(T, dtype=np.float64), dtype=torch.float32)
    pw = torch.as_tensor(np.asarray(pivot_world, dtype=np.float64), dtype=torch.float32)
    pivot_cam = T0[:3, :3] @ pw + T0[:3, 3]
    not_depth = torch.tensor([1.0, 1.0, 1.0, 1.0, 1.0, 0.0])
    n = img.shape[0]
    pyramid = []
    for factor, iterations, lr in levels:
        img_l = downsample(img, factor) if factor > 1 else img
        w_l = downsample(w, factor) * (downsample(val, factor) > 0.99).float() if factor > 1 else w
        pyramid.append((img_l, w_l, scaled_K(K, n / img_l.shape[0]), iterations, lr))

    def poses_of(th: torch.Tensor) -> torch.Tensor:
        return increment(th, pivot_cam) @ T0

    def score(th: torch.Tensor) -> np.ndarray:
        with torch.no_grad():
            return batch_similarity(renderer, poses_of(th), K, img, w,
                                    samples_per_ray).double().numpy()

    def profile(start: torch.Tensor) -> torch.Tensor:
        """Refine the five non-depth DoF of every row of ``start`` (k, 6) together."""
        theta = start.clone()
        for img_l, w_l, K_l, iterations, lr in pyramid:
            # similarities of different sizes do not compare: each level starts afresh
            best = torch.full((len(theta),), -math.inf)
            adam_on_increments(renderer, theta, best, T0, pivot_cam, K_l, img_l, w_l,
                               samples_per_ray, iterations, lr, not_depth)
        return theta

    s_before = float(score(torch.zeros(1, 6))[0])
    offsets = torch.arange(-half_width, half_width + 1, dtype=torch.float32) * step_mm
    start = torch.zeros(len(offsets), 6)
    start[:, 5] = offsets
    thetas = profile(start)
    sims = score(thetas)
    for _ in range(max_shifts):
        i = int(np.argmax(sims))
        if 0 < i < len(sims) - 1:
            break
        side = 1.0 if i == len(sims) - 1 else -1.0
        nxt = thetas[i].repeat(half_width * 2, 1)  # continue from the end copy's pose
        nxt[:, 5] = thetas[i, 5] + side * torch.arange(1, 2 * half_width + 1) * step_mm
        more = profile(nxt)
        thetas = torch.cat([thetas, more]) if side > 0 else torch.cat([more.flip(0), thetas])
        sims = np.concatenate([sims, score(more)]) if side > 0 else np.concatenate(
            [score(more)[::-1], sims])
    i = int(np.argmax(sims))
    best_th, best_s = thetas[i], float(sims[i])
    vertex = parabola_vertex(sims, i)
    if vertex is not None:
        off = float(np.clip(vertex, -0.5, 0.5))
        j = i + (1 if off > 0 else -1)
        th_fit = thetas[i] + abs(off) * (thetas[j] - thetas[i])
        s_fit = float(score(th_fit[None])[0])
        if s_fit >= best_s:
            best_th, best_s = th_fit, s_fit
    if best_s <= s_before:
        return DepthSearch(np.asarray(T, dtype=np.float64).copy(), 0.0, s_before, s_before)
    with torch.no_grad():
        T_out = orthonormalised((increment(best_th, pivot_cam) @ T0).double().numpy())
    return DepthSearch(T_out, float(best_th[5]), s_before, best_s)

