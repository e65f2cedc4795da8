"""Refining one start of :func:`registration.engine.pipeline.register`: the gradient
refinement, the scatter fit on the refinement image, the depth stages (profile and 1-D
search) at the depth-search size, and the restart and depth-rival self-checks.

Poses ``T_cam_from_world`` map CT LPS mm to camera mm; pivots are LPS mm; images are the
square refinement image (``ref_img``, ``img_t``, ``val_t``) and, for the depth stages, a
square resampling of the X-ray at ``depth_search_size`` px.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import numpy as np
import torch

from geometry.camera import Camera
from registration.engine.depth_rivals import depth_rivals
from registration.engine.depth_search import depth_line_search, depth_profile_search
from registration.engine.pipeline_stages import StageClock, similarity_on_square
from registration.engine.refine import RefineLevel, refine_pose
from registration.engine.restart_check import RestartCheck, restart_check
from registration.engine.scatter_model import ScatteredRenderer, fit_scatter
from registration.engine.xray_input import NetworkImage, to_square

if TYPE_CHECKING:
    from registration.engine.pipeline import RegistrationOptions


def refine_one(renderer, img: np.ndarray, valid: np.ndarray, camera: Camera,
               ref_img: NetworkImage, img_t: torch.Tensor, val_t: torch.Tensor,
               weight: torch.Tensor | None, pivots: tuple[np.ndarray, np.ndarray],
               T_start: np.ndarray, levels: tuple[RefineLevel, ...],
               opt: RegistrationOptions, rsize: int,
               stage: StageClock) -> tuple[np.ndarray, float, RestartCheck | None]:
    """Refine one start: gradient refinement, scatter fit (when it beats no scatter, the
    later stages compare through its model), depth stages, restart and depth-rival
    self-checks.
    ``img``, ``valid`` (H, W) the X-ray at the resolution of ``camera``; ``ref_img`` its
    square refinement image of ``rsize`` px (``img_t``, ``val_t`` as tensors) and
    ``weight`` the bone weight on it (or None).
    ``pivots``: (the pivot of the refinement and the depth search, that of the restarts).
    The restarts turn about the bone centre: about the view's centre they stayed near
    wrong close-up poses (abdomen CT, 20 held-out shots: poses 45 and 552 mm off passed;
    about the bone centre both failed). Returns ``(T_cam_from_world, similarity at the finest
    refinement level, the restarts or None when off)``; stage timings add up over calls."""
    pivot, check_pivot = pivots

    add = stage.add
    t0 = time.perf_counter()
    rr = refine_pose(renderer, img_t, ref_img.K, T_start, valid=val_t, weight=weight,
                     pivot_world=pivot, levels=levels, optimise_depth=opt.optimise_depth)
    T_final, sim = rr.T_cam_from_world, rr.similarity
    add("refine", t0, iterations=rr.iterations, initial_similarity=round(rr.initial_similarity, 4),
        similarity=round(rr.similarity, 4))
    dsize = int(min(opt.depth_search_size, max(img.shape)))
    dsize -= dsize % 4
    # both depth stages at the depth-search size (the refinement's when that is off): the
    # depth is better resolved at 256 px than at the refinement's 128 px
    d_img, d_w = ref_img, weight
    if dsize >= 16 and dsize != rsize:
        d_img = to_square(img, valid, camera.K, dsize)
        if weight is not None:
            d_w = torch.nn.functional.interpolate(weight[None, None], size=(dsize, dsize),
                                                  mode="bilinear", align_corners=False)[0, 0]
    d_img_t, d_val_t = torch.as_tensor(d_img.image), torch.as_tensor(d_img.valid)

    def depth_stages(T: np.ndarray, record: bool, line: bool = True) -> np.ndarray:
        """The depth profile search and (``line``) the 1-D depth search, whichever are on,
        from ``T``; ``record``: add their timings and figures to the stages."""
        if opt.profile_search:
            t0 = time.perf_counter()
            rs = depth_profile_search(renderer, d_img_t, d_img.K, T, pivot, valid=d_val_t,
                                      weight=d_w)
            T = rs.T_cam_from_world
            if record:
                add("depth_profile", t0, moved_mm=round(rs.moved_mm, 3),
                    similarity_before=round(rs.similarity_before, 5),
                    similarity_after=round(rs.similarity, 5))
        if dsize >= 16 and line:
            t0 = time.perf_counter()
            ds = depth_line_search(renderer, d_img_t, d_img.K, T, pivot, valid=d_val_t,
                                   weight=d_w)
            T = ds.T_cam_from_world
            if record:
                add("depth", t0, size=dsize, moved_mm=round(ds.moved_mm, 3),
                    similarity_before=round(ds.similarity_before, 5),
                    similarity_after=round(ds.similarity, 5))
        return T

    if opt.scatter_fit:
        # the scatter model that matches best, and the depth where it does, on the
        # refinement image, before the depth stages settle the depth with it at their size
        # (registration.engine.scatter_model)
        t0 = time.perf_counter()
        fit = fit_scatter(renderer, img_t, ref_img.K, T_final, pivot, valid=val_t,
                          weight=weight)
        used = fit.model.fraction > 0.0 and fit.similarity > fit.similarity_without
        add("scatter", t0, used=used, **fit.model.as_stage(), offset_mm=fit.offset_mm,
            offset_without_mm=fit.offset_without_mm,
            similarity=round(fit.similarity, 5),
            similarity_without=round(fit.similarity_without, 5))
        if used:
            renderer = ScatteredRenderer(renderer, fit.model)
            T_final = fit.T_cam_from_world
    T_final = depth_stages(T_final, record=True)
    if opt.profile_search or dsize >= 16:  # the pose moved: its similarity at the finest level
        last = opt.refine_levels[-1]
        sim = similarity_on_square(renderer, T_final, ref_img.K, img_t, val_t, last.factor,
                                   last.samples_per_ray, weight=weight)
    rc = None
    if opt.n_restarts > 0:
        t0 = time.perf_counter()
        # a restart that lands far away goes through the profile search as the refined
        # pose did: on a close-up's flat depth ridge the refinement alone stops anywhere.
        # Not the 1-D search after it (each restart ended with one already): on 20 held-out
        # pelvis_bone_002 shots every pose and status stayed the same without it
        settle = ((lambda T: depth_stages(T, record=False, line=False))
                  if opt.profile_search else None)
        rc = restart_check(renderer, img_t, ref_img.K, T_final, pivot_world=check_pivot,
                           valid=val_t, weight=weight, n_restarts=opt.n_restarts,
                           settle=settle, settle_beyond_mm=opt.thresholds.max_restart_spread_mm)
        add("restarts", t0, spread_mm=[round(x, 2) for x in rc.spread_mm],
            similarities=[round(x, 4) for x in rc.similarities],
            reference_similarity=round(rc.reference_similarity, 4))
        if opt.depth_rivals:
            t0 = time.perf_counter()
            rc.depth = depth_rivals(renderer, d_img_t, d_img.K, T_final, pivot,
                                    centre_world=check_pivot, valid=d_val_t, weight=d_w)
            add("depth_rivals", t0,
                **rc.depth.as_stage(opt.thresholds.max_restart_spread_mm))
    return T_final, sim, rc
