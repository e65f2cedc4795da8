"""X-ray to CT registration (no Django).

Stages: network -> confidence-ranked selection -> PnP-RANSAC (+LM) -> starts: the PnP
pose, a given initial pose (header angles or ``--init``) and the DRR library's retrieved
views (:mod:`registration.engine.library`, :mod:`registration.engine.starts`; without a
model this is training-free mode) -> coarse pose search around each start (the library's
views: Adam only, in one batch), all competing on the same similarity ->
intensity refinement of the best hypothesis -> depth profile search (optional) and 1-D
depth search (search, refinement and depth searches turn about the view pivot,
:func:`~registration.engine.refine.view_pivot`) -> self-checks (similarity, local
similarity, bone-mask agreement, restart consistency); when the self-checks fail, the next
start is refined and checked (a restart that matched better than the refined pose, else
the next search hypothesis) before the registration is reported as failed.

Input: an X-ray in line-integral form (H, W) with its collimator mask and its
:class:`~geometry.camera.Camera` (dewarped pinhole intrinsics). Output: a
:class:`RegistrationResult` whose :meth:`~RegistrationResult.to_json` is the
``result.json`` of docs/CONVENTIONS.md.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from geometry.camera import Camera
from registration.engine.library import LibraryGrid
from registration.engine.model_io import LoadedModel
from registration.engine.pipeline_checks import check_final
from registration.engine.pipeline_refine import refine_one as _refine_one
from registration.engine.pipeline_stages import (
    RegistrationState,
    collect_starts,
    pnp_start,
    prepare_refinement,
    score_hypotheses,
    search_starts,
    unrefined_similarity,
)
from registration.engine.quality import (
    QualityError,
    QualityThresholds,
    advice_for,
    check_image,
    check_network,
)
from registration.engine.refine import DEFAULT_LEVELS, RefineLevel
from registration.engine.search import SearchSpace
from registration.engine.starts import start_kind
from registration.engine.unet import normalise_image
from registration.engine.xray_input import to_square


@dataclass
class RegistrationResult:
    status: str
    message: str
    T_cam_from_world: np.ndarray | None
    seconds: float
    stages: dict
    n_correspondences: int = 0
    n_inliers: int = 0
    similarity: float = float("nan")
    T_pnp: np.ndarray | None = None
    extras: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        """The ``result.json`` object (CONVENTIONS.md). JSON has no NaN, so a similarity
        that was never computed is written as -1.0."""
        sim = self.similarity
        return {
            "status": self.status,
            "message": self.message,
            "T_cam_from_world": None
            if self.T_cam_from_world is None
            else [[float(x) for x in row] for row in self.T_cam_from_world],
            "seconds": float(self.seconds),
            "stages": self.stages,
            "n_correspondences": int(self.n_correspondences),
            "n_inliers": int(self.n_inliers),
            "similarity": float(sim) if math.isfinite(sim) else -1.0,
        }


@dataclass
class RegistrationOptions:
    refine: bool = True
    n_keep: int = 400
    grid: int = 8
    ransac_px: float = 3.0
    ransac_iterations: int = 300
    # after RANSAC on the selected few: weighted robust LM of the pose on every bone
    # correspondence within ransac_px of it, weights 1 / sigma^2 (pnp.refine_pose_weighted).
    # pelvis_bone_002, 80 held-out shots, quick network trained 100 min: best half
    # 2.75 -> 2.44 mm, mean 12.3 -> 11.1 mm, 46 shots nearer and 34 farther, +13 ms.
    # Points with isotropic 3-D noise bias such a fit in depth (errors in variables; see
    # tests/registration/test_pipeline_pnp_polish.py), yet on the network's points keeping
    # only those as confident as the selected median did worse (best half 3.14 mm)
    pnp_polish: bool = True
    refine_size: int = 128  # capped at the image's larger side (never upsample)
    refine_levels: tuple[RefineLevel, ...] = DEFAULT_LEVELS
    optimise_depth: bool = True  # False: 5 DoF, depth kept from the start pose (refine_pose)
    n_restarts: int = 2  # self-check: re-refinements from perturbed copies (0: off)
    # self-check beside the restarts (off with them): copies moved along the beam and
    # refitted must match worse (registration.engine.depth_rivals)
    depth_rivals: bool = True
    # fit a scatter model per image (registration.engine.scatter_model) and compare DRRs
    # through it from the depth stages on: scatter otherwise biases the depth
    scatter_fit: bool = True
    search: bool = True  # coarse low-resolution search around each start before refining
    search_space: SearchSpace = field(default_factory=SearchSpace)
    n_hypotheses: int = 3  # distinct search results compared at a finer level (1: best only)
    # refine_levels the search replaces (skipped after a search): the depth-frozen first
    # level only; skipping the 6-DoF coarse level too left header starts a median 3.4 mm
    # off instead of 0.3 mm (6 held-out pelvis shots)
    coarse_levels: int = 1
    # before the 1-D depth search: the depth with the best match once the five other DoF
    # follow it (refine.depth_profile_search), at the depth-search size. pelvis_bone_002,
    # 20 held-out shots: mean 0.91 -> 0.48 mm, +1.0 s per image. A restart of the self-check
    # that lands far away goes through it too (else it stops elsewhere on the depth ridge
    # and rejects a good close-up pose; synthetic close-up, 6 seeded starts: 2 rejected
    # without the profile search, none with it, all 0.56-1.29 mm)
    profile_search: bool = True
    depth_search_size: int = 256  # 1-D depth search at this image size after refining (0: off)
    max_attempts: int = 2  # hypotheses refined in turn until one passes the self-checks
    # search, refinement and depth search turn about the point at the bone's depth on the
    # ray through the view's centre (refine.view_pivot), not about the bone centre
    view_pivot: bool = True
    thresholds: QualityThresholds = field(default_factory=QualityThresholds)
    device: str = "cpu"
    # the DRR library's retrieved views (registration.engine.library) as starts:
    # "compete" (beside the network's and the initial pose), "fallback" (only when no
    # other start is left), "off". Without a model and an initial pose it always runs
    # (training-free mode)
    library: str = "compete"
    library_grid: LibraryGrid = field(default_factory=LibraryGrid)
    # library starts: Adam from each retrieved view at the search size, all in one batch,
    # no shift grid (the FFT correlation placed them)
    library_search_space: SearchSpace = field(default_factory=SearchSpace)


def network_correspondences(
    model: LoadedModel, image: np.ndarray, valid: np.ndarray, device: str = "cpu"
) -> dict:
    """Run the network on a square image of the model's size.

    Returns ``uv`` (M, 2) pixels, ``xyz`` (M, 3) LPS mm, ``sigma_mm`` (M,) for the entry and
    exit points of every pixel predicted as bone, plus ``bone_prob`` (N, N).
    """
    x = torch.as_tensor(image, dtype=torch.float32)[None]
    v = torch.as_tensor(valid)[None]
    with torch.no_grad():
        out = model.net(normalise_image(x, v).to(device))
    prob = torch.sigmoid(out.bone_logit[0, 0]).cpu().numpy()
    coords = out.coords[0].cpu().numpy()  # (6, N, N)
    ls = out.log_scale[0].cpu().numpy()  # (2, N, N)
    bone = (prob > 0.5) & valid
    vv, uu = np.nonzero(bone)
    uv = np.stack([uu, vv], 1).astype(np.float64)
    scale = model.box_scale
    centre = model.box_centre
    xyz_e = coords[:3, vv, uu].T * scale + centre
    xyz_x = coords[3:, vv, uu].T * scale + centre
    sig_e = np.exp(ls[0, vv, uu]) * scale
    sig_x = np.exp(ls[1, vv, uu]) * scale
    return {
        "uv": np.concatenate([uv, uv]),
        "xyz": np.concatenate([xyz_e, xyz_x]),
        "sigma_mm": np.concatenate([sig_e, sig_x]),
        "bone_prob": prob,
        "bone_fraction": float(bone.sum() / max(valid.sum(), 1)),
    }


def register(
    volume,
    model: LoadedModel | None,
    line_integral: np.ndarray,
    valid: np.ndarray,
    camera: Camera,
    *,
    T_init: np.ndarray | None = None,
    options: RegistrationOptions | None = None,
    renderer=None,
    initial_kind: str = "init",
) -> RegistrationResult:
    """Register one X-ray to the CT.

    ``line_integral`` (H, W) attenuation-positive image and ``valid`` (H, W) collimator
    mask at the resolution of ``camera``. ``model`` may be ``None``: training-free mode,
    started from ``T_init`` and/or the DRR library (:mod:`registration.engine.library`).
    ``initial_kind`` names ``T_init`` in ``stages["start"]`` ("header" for C-arm header
    angles, "init" for a given pose). ``renderer`` (a ``DrrRenderer`` of ``volume``) may be
    passed in to reuse it (and its DRR library) across images.
    ``stages["start"]``: ``{"seconds", "mode": "network" | "training-free", "winner":
    "network" | "library" | "header" | "init", "candidates": [...]}``.
    Never raises for a well-formed input that fails its self-checks: the result then has
    ``status == "failed"`` and a one-line ``message``.
    """
    opt = options or RegistrationOptions()
    t_start = time.perf_counter()
    stages: dict = {}
    res = RegistrationResult("failed", "", None, 0.0, stages)
    img = np.asarray(line_integral, dtype=np.float32)
    valid = np.asarray(valid, dtype=bool)
    if img.shape != (camera.height, camera.width) or valid.shape != img.shape:
        raise ValueError(
            f"X-ray is {img.shape[1]}x{img.shape[0]} pixels but the camera is "
            f"{camera.width}x{camera.height}"
        )
    if opt.library not in ("compete", "fallback", "off"):
        raise ValueError(f"library must be compete, fallback or off, got {opt.library!r}")

    st = RegistrationState(volume, model, img, valid, camera, T_init, opt, initial_kind, res,
                           renderer)
    st.start_info = {"seconds": 0.0, "mode": "network" if model is not None else "training-free",
                     "winner": None, "candidates": []}
    try:
        t0 = time.perf_counter()
        check_image(img, valid, opt.thresholds)
        if model is not None:
            _network_stage(st, t0)
        if st.T_start is None and T_init is not None:
            st.T_start = np.asarray(T_init, dtype=np.float64)
        prepare_refinement(st)
        collect_starts(st)
        search_starts(st)
        if opt.refine:
            T_final = _refine_hypotheses(st)
        else:
            T_final, sim = unrefined_similarity(st)
            check_final(st, T_final, sim, None)
        _succeeded(st, T_final)
    except QualityError as exc:
        _failed(st, exc)
    st.start_info["seconds"] = round(sum(stages.get(k, {}).get("seconds", 0.0)
                                         for k in ("library", "search", "hypotheses")), 4)
    stages["start"] = st.start_info
    res.seconds = time.perf_counter() - t_start
    return res


def _network_stage(st: RegistrationState, t0: float) -> None:
    """The network on the square network image (``preprocess`` and ``network`` stages, from
    ``t0``) and its check, then PnP from its correspondences
    (:func:`~registration.engine.pipeline_stages.pnp_start`). A failed network check
    raises QualityError unless an initial pose or the library can start the refinement."""
    model, opt = st.model, st.opt
    net_img = to_square(st.img, st.valid, st.camera.K, model.input_size)
    st.clock("preprocess", t0, input_size=model.input_size)
    t0 = time.perf_counter()
    corr = network_correspondences(model, net_img.image, net_img.valid, opt.device)
    st.bone_prob = corr["bone_prob"]
    med_sig = float(np.median(corr["sigma_mm"])) if len(corr["sigma_mm"]) else float("inf")
    st.clock("network", t0, bone_fraction=round(corr["bone_fraction"], 4),
             median_uncertainty_mm=round(med_sig, 3) if math.isfinite(med_sig) else None)
    t0 = time.perf_counter()
    try:
        check_network(corr["bone_fraction"], med_sig, opt.thresholds)
    except QualityError:
        if st.T_init is None and not (opt.library != "off" and opt.refine):
            raise
        return
    pnp_start(st, corr, net_img, t0)


def _refine_hypotheses(st: RegistrationState) -> np.ndarray:
    """Refine the search's hypotheses (or the start) in turn until one passes the
    self-checks, at most ``max_attempts``; a restart that matched better than a failed
    pose is refined next. Returns the final pose; raises the first failure's QualityError
    (its pose and similarity in the result) when none passes."""
    opt, res = st.opt, st.res
    levels = opt.refine_levels
    if st.search_cands:
        levels, order = score_hypotheses(st)
    cands = st.search_cands
    # (start pose, index of the search candidate or "restart", where it came from)
    queue: list[tuple[np.ndarray, int | str, str]] = (
        [(cands[i][1], i, cands[i][2]) for i in order] if cands else [(st.T_start, 0, "start")]
    )
    first_failure: tuple[QualityError, np.ndarray, float] | None = None
    n_tried = 0
    while True:
        T_h, chosen, origin = queue.pop(0)
        n_tried += 1
        # called through this module, so that tests can stand in for one refinement
        T_final, sim, rc = _refine_one(
            st.renderer, st.img, st.valid, st.camera, st.ref_img, st.img_t, st.val_t,
            st.weight, (st.pivot_for(T_h), st.pivot), T_h, levels, opt, st.rsize, st.clock)
        try:
            check_final(st, T_final, sim, rc)
        except QualityError as exc:
            if first_failure is None:
                first_failure = (exc, T_final, sim)
            rival = None if rc is None else rc.best_rival(opt.thresholds.restart_similarity_margin)
            if rival is not None:
                # the refinement stopped short of the optimum: a restart matches
                # better, so refine from where it landed next
                queue.insert(0, (rc.poses[rival], "restart", origin))
            if queue and n_tried < max(1, opt.max_attempts):
                continue
            # report the best hypothesis' failure (its pose, similarity and reason)
            res.T_cam_from_world, res.similarity = first_failure[1], first_failure[2]
            raise first_failure[0] from None
        break
    if cands:
        st.winner = origin
        res.stages["hypotheses"].update(attempts=n_tried, chosen=chosen, start=origin)
    return T_final


def _succeeded(st: RegistrationState, T_final: np.ndarray) -> None:
    """Status ok with ``T_final``, the winning start's kind and a one-line message."""
    res, info = st.res, st.start_info
    res.status = "ok"
    res.T_cam_from_world = T_final
    info["winner"] = start_kind(st.winner, st.initial_kind)
    if st.model is not None:
        res.message = (f"registered: {res.n_inliers}/{res.n_correspondences} inliers, "
                       f"similarity {res.similarity:.3f}")
    elif info["winner"] in ("init", "header"):
        res.message = f"refined from the initial pose, similarity {res.similarity:.3f}"
    else:
        res.message = (f"registered in training-free mode (no network, started from the "
                       f"{info['winner']}), similarity {res.similarity:.3f}")


def _failed(st: RegistrationState, exc: QualityError) -> None:
    """Status failed with the failed check, its reason and advice; the rejected pose is
    kept in ``extras["T_rejected"]`` for benchmarks (never reported)."""
    res, stages = st.res, st.res.stages
    res.status = "failed"
    res.message = f"{exc.stage}: {exc}; what to try: {advice_for(exc.stage)}"
    if res.T_cam_from_world is not None:
        res.extras["T_rejected"] = res.T_cam_from_world
    res.T_cam_from_world = None
    stages.setdefault("quality", {"seconds": 0.0})
    stages["quality"]["failed_check"] = exc.stage
    stages["quality"]["advice"] = advice_for(exc.stage)
