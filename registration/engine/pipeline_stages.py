"""The stages of :func:`registration.engine.pipeline.register` up to the refinement: the
state they share, PnP from the network's correspondences, the square refinement image,
the candidate starts (PnP, initial pose, DRR library) and the coarse search around them.

Frames and units: poses ``T_cam_from_world`` map CT LPS mm to camera mm; pixels are
``(u, v)`` of the image given (or of its square resampling, ``ref_img``); similarities
are the refinement's (high-passed NCC, [-1, 1]); stage timings in seconds.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
import torch

from geometry.camera import Camera
from registration.engine.pnp import refine_pose_weighted, solve_pnp_ransac
from registration.engine.quality import QualityError, check_pnp, check_pose
from registration.engine.refine import RefineLevel, view_pivot
from registration.engine.refine_similarity import level_similarity
from registration.engine.search import coarse_search, refine_starts
from registration.engine.selection import select_correspondences
from registration.engine.similarity import downsample
from registration.engine.starts import library_starts, start_kind
from registration.engine.xray_input import NetworkImage, to_square

if TYPE_CHECKING:
    from registration.engine.model_io import LoadedModel
    from registration.engine.pipeline import RegistrationOptions, RegistrationResult


class StageClock:
    """Writes ``{"seconds": ..., **figures}`` per stage into ``stages``; ``add`` sums the
    seconds of a stage run more than once (e.g. refinement of a second hypothesis)."""

    def __init__(self, stages: dict) -> None:
        self.stages = stages

    def __call__(self, name: str, t0: float, **kw) -> None:
        self.stages[name] = {"seconds": round(time.perf_counter() - t0, 4), **kw}

    def add(self, name: str, t0: float, **kw) -> None:
        prev = self.stages.get(name, {}).get("seconds", 0.0)
        self(name, t0, **kw)
        self.stages[name]["seconds"] = round(prev + self.stages[name]["seconds"], 4)


@dataclass
class RegistrationState:
    """What the stages of one registration share. ``img`` (H, W) float32 line integrals
    and ``valid`` (H, W) bool at the resolution of ``camera``; ``res`` collects the result
    (its ``stages`` the timings, through ``clock``); ``start_info`` becomes
    ``stages["start"]``. Filled in by the stages: the network's ``bone_prob`` (N, N),
    the square refinement image ``ref_img`` (``rsize`` px; ``img_t``, ``val_t`` as
    tensors), the bone centre ``pivot`` (LPS mm), the bone ``weight`` (rsize, rsize), the
    candidate ``starts`` (name -> pose), the ``winner``'s name, the search's candidates
    ``(similarity, pose, start name)`` best first and the current start ``T_start``.
    ``t_mark``: start of the last untimed preparation (renderer set-up or the library), from
    which the no-refinement ``similarity`` stage counts its seconds."""

    volume: Any
    model: LoadedModel | None
    img: np.ndarray
    valid: np.ndarray
    camera: Camera
    T_init: np.ndarray | None
    opt: RegistrationOptions
    initial_kind: str
    res: RegistrationResult
    renderer: Any = None
    start_info: dict = field(default_factory=dict)
    bone_prob: np.ndarray | None = None
    T_start: np.ndarray | None = None
    rsize: int = 0
    ref_img: NetworkImage | None = None
    img_t: torch.Tensor | None = None
    val_t: torch.Tensor | None = None
    pivot: np.ndarray | None = None
    weight: torch.Tensor | None = None
    starts: dict[str, np.ndarray] = field(default_factory=dict)
    winner: str | None = None
    search_cands: list[tuple[float, np.ndarray, str]] = field(default_factory=list)
    t_mark: float = 0.0

    def __post_init__(self) -> None:
        self.clock = StageClock(self.res.stages)

    def pivot_for(self, T: np.ndarray) -> np.ndarray:
        """The pivot (LPS mm) of the search, refinement and depth search from pose ``T``:
        the view pivot (:func:`~registration.engine.refine.view_pivot`) or the bone centre."""
        if not self.opt.view_pivot:
            return self.pivot
        return view_pivot(T, self.ref_img.K, self.val_t, self.pivot, self.weight)


def pnp_start(st: RegistrationState, corr: dict, net_img: NetworkImage, t0: float) -> None:
    """Confidence-ranked selection of the network's correspondences ``corr`` (on the
    square network image ``net_img``), PnP-RANSAC (+ the weighted LM polish) and the PnP
    checks: a pose that passes becomes ``st.T_start`` and ``st.res.T_pnp``. A failed check
    raises QualityError unless another start can stand in."""
    model, opt, res = st.model, st.opt, st.res
    th = opt.thresholds
    sel = select_correspondences(corr["uv"], corr["sigma_mm"], (model.input_size,) * 2,
                                 n_keep=opt.n_keep, grid=opt.grid)
    uv, xyz, sig = corr["uv"][sel], corr["xyz"][sel], corr["sigma_mm"][sel]
    st.clock("selection", t0, n_candidates=len(corr["uv"]), n_selected=len(sel),
             median_selected_uncertainty_mm=round(float(np.median(sig)), 3)
             if len(sig) else None)
    t0 = time.perf_counter()
    pnp = solve_pnp_ransac(uv, xyz, net_img.K, reprojection_px=opt.ransac_px,
                           iterations=opt.ransac_iterations)
    res.n_correspondences = pnp.n_correspondences
    res.n_inliers = pnp.n_inliers
    T_net, n_polish = pnp.T_cam_from_world, None
    if pnp.ok and opt.pnp_polish:
        T_net, n_polish = refine_pose_weighted(
            corr["uv"], corr["xyz"], net_img.K, T_net,
            1.0 / np.maximum(corr["sigma_mm"], 1e-3) ** 2, gate_px=opt.ransac_px,
        )
    rmse = pnp.reprojection_rmse_px
    st.clock("pnp", t0, n_polished=n_polish, inlier_ratio=round(pnp.inlier_ratio, 4),
             reprojection_rmse_px=None if not math.isfinite(rmse)
             else round(rmse * st.camera.width / model.input_size, 3))
    try:
        if not pnp.ok:
            raise QualityError("pnp", pnp.message)
        check_pnp(pnp.n_correspondences, pnp.n_inliers, th)
        check_pose(T_net, model.box_centre, st.camera.source_to_detector_mm, th)
        st.T_start = T_net
        res.T_pnp = st.T_start.copy()
    except QualityError:
        if not opt.refine or (st.T_init is None and opt.library == "off"):
            raise


def prepare_refinement(st: RegistrationState) -> None:
    """The renderer (unless given), the square refinement image of ``refine_size`` px
    (never upsampled, a multiple of 4), the bone centre as pivot and, with a network, the
    bone weight from its bone probability (dilated, in [0.3, 1])."""
    opt, model = st.opt, st.model
    st.t_mark = time.perf_counter()
    if st.renderer is None:
        from registration.engine.drr import DrrRenderer

        thr = model.bone_threshold_hu if model is not None else None
        st.renderer = DrrRenderer(st.volume, device=opt.device, bone_threshold_hu=thr)
    rsize = int(min(opt.refine_size, max(st.img.shape)))
    rsize -= rsize % 4
    st.rsize = rsize
    st.ref_img = to_square(st.img, st.valid, st.camera.K, rsize)
    st.img_t = torch.as_tensor(st.ref_img.image)
    st.val_t = torch.as_tensor(st.ref_img.valid)
    if model is not None:
        st.pivot = model.box_centre
    else:
        from registration.engine.dataset import bone_box

        st.pivot = bone_box(st.volume, st.renderer.bone_threshold_hu).centre
    st.weight = None
    if st.bone_prob is not None:
        # bone_prob lies on the padded square network grid: a plain resize matches
        bp = torch.as_tensor(
            cv2.resize(
                st.bone_prob.astype(np.float32), (rsize, rsize), interpolation=cv2.INTER_LINEAR
            )
        )
        bp = torch.nn.functional.max_pool2d(bp[None, None], 5, stride=1, padding=2)[0, 0]
        st.weight = 0.3 + 0.7 * bp


def collect_starts(st: RegistrationState) -> None:
    """The candidate starts: the PnP pose and/or the given initial pose (e.g. header
    angles), and the DRR library's views (competing, or filling in when no other start is
    left; the best view alone without refinement). Raises QualityError when there is none."""
    opt = st.opt
    starts: dict[str, np.ndarray] = {}
    if st.res.T_pnp is not None:
        starts["pnp"] = st.res.T_pnp
    if st.T_init is not None:
        starts["initial"] = np.asarray(st.T_init, dtype=np.float64)
    # without refinement a given start is checked as it is: the library only fills in
    lib_mode = opt.library if opt.refine else "fallback"
    if lib_mode == "compete" or (not starts and (lib_mode == "fallback" or st.model is None)):
        t0 = st.t_mark = time.perf_counter()
        lib_starts, figures = library_starts(st.renderer, st.volume, st.img, st.valid,
                                             st.camera, opt.library_grid)
        if not opt.refine:  # no search to compete in: the best view alone
            lib_starts = dict(list(lib_starts.items())[:1])
        starts.update(lib_starts)
        st.start_info.update(figures)
        st.clock("library", t0, n_starts=len(lib_starts))
    if not starts:
        raise QualityError("start", "no start pose: the network found none and no "
                                    "C-arm angles or initial pose were given")
    st.start_info["candidates"] = [start_kind(k, st.initial_kind) for k in starts]
    if st.T_start is None:
        st.T_start = next(iter(starts.values()))
    st.starts = starts
    st.winner = next(iter(starts))


def search_starts(st: RegistrationState) -> None:
    """With search and refinement on: the coarse search around each start (the library's
    views: Adam only, in one batch), all candidates in ``st.search_cands`` best first.
    Otherwise, of several starts the one that matches best at the first refinement level."""
    opt, renderer, K = st.opt, st.renderer, st.ref_img.K
    if opt.search and opt.refine:
        t0 = time.perf_counter()
        found = {
            k: coarse_search(renderer, st.img_t, K, T, st.pivot_for(T), valid=st.val_t,
                             space=opt.search_space)
            for k, T in st.starts.items() if not k.startswith("library")
        }
        lib_keys = [k for k in st.starts if k.startswith("library")]
        if lib_keys:  # placed by the library's FFT correlation: Adam only, one batch
            found.update(zip(lib_keys, refine_starts(
                renderer, st.img_t, K, [st.starts[k] for k in lib_keys],
                [st.pivot_for(st.starts[k]) for k in lib_keys], valid=st.val_t,
                space=opt.library_search_space), strict=True))
        st.search_cands = sorted(
            ((s, T, k) for k, r in found.items() for s, T in r.candidates),
            key=lambda c: -c[0],
        )
        st.T_start = st.search_cands[0][1]
        st.clock("search", t0, best_start=st.search_cands[0][2],
                 n_evaluated=sum(r.n_evaluated for r in found.values()),
                 similarity={k: round(r.similarity, 4) for k, r in found.items()},
                 start_similarity={k: round(r.start_similarity, 4) for k, r in found.items()})
    elif len(st.starts) > 1:
        sims = {
            k: similarity_on_square(renderer, T, K, st.img_t, st.val_t,
                                    opt.refine_levels[0].factor, 64)
            for k, T in st.starts.items()
        }
        st.winner = max(sims, key=sims.get)
        st.T_start = st.starts[st.winner]


def score_hypotheses(st: RegistrationState) -> tuple[tuple[RefineLevel, ...], list[int]]:
    """The search did the coarse work: score its distinct results (up to ``n_hypotheses``)
    at the next finer level. Returns the refinement levels left after the ones the search
    replaces and the order (best first) in which to refine the hypotheses."""
    opt = st.opt
    t0 = time.perf_counter()
    levels = opt.refine_levels
    f = levels[min(opt.coarse_levels, len(levels) - 1)].factor
    scored = [
        similarity_on_square(st.renderer, T_c, st.ref_img.K, st.img_t, st.val_t, f, 64,
                             crisp=True)
        for _s, T_c, _k in st.search_cands[: max(1, opt.n_hypotheses)]
    ]
    order = [int(i) for i in np.argsort(-np.asarray(scored), kind="stable")]
    levels = levels[opt.coarse_levels:] or levels[-1:]
    st.clock("hypotheses", t0, n=len(scored), chosen=order[0],
             start=st.search_cands[order[0]][2], similarities=[round(x, 4) for x in scored])
    return levels, order


def unrefined_similarity(st: RegistrationState) -> tuple[np.ndarray, float]:
    """Without refinement: the start as the final pose and its similarity (half size, bone
    weighted), recorded as the ``similarity`` stage."""
    T_final = st.T_start
    sim = similarity_on_square(st.renderer, T_final, st.ref_img.K, st.img_t, st.val_t, 2, 96,
                               weight=st.weight)
    st.clock("similarity", st.t_mark, similarity=round(sim, 4))
    return T_final, sim


def similarity_on_square(renderer, T: np.ndarray, K: np.ndarray, img_t: torch.Tensor,
                         val_t: torch.Tensor, factor: int, samples_per_ray: int, *,
                         weight: torch.Tensor | None = None, crisp: bool = False) -> float:
    """Similarity of the DRR at ``T`` (``T_cam_from_world``) with the square refinement
    image ``img_t`` (intrinsics ``K``) downsampled by ``factor``. The weight is the
    downsampled valid mask (``crisp``: only pixels whose whole block is valid), times the
    downsampled bone ``weight`` when given."""
    vl = downsample(val_t.float(), factor)
    wl = (vl > 0.99).float() if crisp else vl
    if weight is not None:
        wl = wl * downsample(weight, factor)
    return level_similarity(renderer, img_t, K, T, wl, factor, samples_per_ray)
