"""The restart self-check of a refined pose: is it a well-determined optimum?

Perturbed copies of the refined pose (``T_cam_from_world``, world = LPS mm) are refined
again and compared with it: by where they put points around the pivot (mm, camera frame)
and by how well they match the X-ray (the refinement's similarity, [-1, 1]).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from geometry.rigid import pose_distance_mm
from registration.engine.depth_rivals import DepthRivals
from registration.engine.depth_search import depth_line_search
from registration.engine.refine import RefineLevel, increment, refine_poses
from registration.engine.refine_similarity import bone_weight_from_drr, pose_similarity

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
    #: the depth-rival check of the same pose, when it ran (set by the registration)
    depth: DepthRivals | None = None

    def best_rival(self, min_gain: float) -> int | None:
        """Index of the restart that matches the X-ray best, if it beats the refined pose
        by more than ``min_gain``, else None: the refinement stopped short of the optimum."""
        if not self.similarities or not math.isfinite(self.reference_similarity):
            return None
        i = int(np.argmax(self.similarities))
        return i if self.similarities[i] > self.reference_similarity + min_gain else None


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
    ``depth_search`` each restart ends with
    :func:`~registration.engine.depth_search.depth_line_search` (+-8 mm), as the
    registration itself does, so that a slow depth convergence is not taken for ambiguity.
    A restart that still lands more than ``settle_beyond_mm`` away is passed to ``settle``
    (``T_cam_from_world`` in and out) when given: the registration's own depth stages
    (e.g. :func:`~registration.engine.depth_search.depth_profile_search`), which the
    refined pose went through too, so that a restart left elsewhere on a flat depth ridge
    is compared where it settles. Restarts that come back cost nothing extra.
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
