"""Scatter in the comparison of a DRR with an X-ray: a forward model fitted per image.

Scattered photons add a broad, smooth glow to the primary image. In the line-integral
(log) domain that glow is not additive: it compresses the contrast most where the patient
is thickest, which the refinement can only mimic by changing the magnification. Measured
on a nanodrr shot of the 3 mm abdomen CT (17 % scatter): the similarity peaked 27 mm from
the true depth, and de-scattering with the true scatter put the peak back at 0 mm. So the
DRR is passed through the same physics before it is compared:
``-log(exp(-g D) + k G_sigma * exp(-g D))`` with ``k`` set by the scatter fraction, and the
fraction, kernel width and gain ``g`` are chosen per image by the best match.

DRRs ``D`` are line integrals (B, H, W); the kernel width is a fraction of the image width
so that one model serves every resolution of the refinement pyramid.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import torch

from registration.engine.depth_search import DepthProfiler
from registration.engine.refine_similarity import GC_WEIGHT, highpass_sigma_px
from registration.engine.similarity import combined_similarity, gaussian_blur


@dataclass(frozen=True)
class ScatterModel:
    """``fraction``: scattered share of the detected signal inside the field (0: none);
    ``sigma_fraction``: the scatter kernel's Gaussian sigma over the image width; ``gain``:
    X-ray attenuation per unit of the DRR's line integral."""

    fraction: float = 0.0
    sigma_fraction: float = 0.2
    gain: float = 1.0

    def apply(self, drr: torch.Tensor) -> torch.Tensor:
        """The line integral the detector would report for ``drr`` (H, W) or (B, H, W)."""
        if self.fraction <= 0.0:
            return drr  # a pure gain changes nothing the similarity sees
        primary = torch.exp(-self.gain * drr)
        width = drr.shape[-1]
        sigma = self.sigma_fraction * width
        ones = torch.ones(drr.shape[-2:], dtype=drr.dtype, device=drr.device)
        glow = gaussian_blur(primary, sigma) / gaussian_blur(ones, sigma).clamp_min(1e-6)
        k = (self.fraction / (1.0 - self.fraction)
             * primary.mean(dim=(-2, -1), keepdim=True)
             / glow.mean(dim=(-2, -1), keepdim=True).clamp_min(1e-12))
        return -torch.log(primary + k * glow)

    def as_stage(self) -> dict:
        return {"fraction": self.fraction, "sigma_fraction": self.sigma_fraction,
                "gain": self.gain}


class ScatteredRenderer:
    """A DRR renderer whose attenuation images pass through ``model`` (bone-only renders,
    used for masks and weights, do not); everything else is the wrapped renderer's."""

    def __init__(self, base, model: ScatterModel) -> None:
        self.base, self.model = base, model

    def render(self, *args, bone_only: bool = False, **kwargs) -> torch.Tensor:
        out = self.base.render(*args, bone_only=bone_only, **kwargs)
        return out if bone_only else self.model.apply(out)

    def __getattr__(self, name: str):
        return getattr(self.base, name)


#: the models tried per image: no scatter, or 10-45 % with a kernel of 5-50 % of the
#: image's width (half of it: a close-up sees a wide field's scatter as a nearly even
#: glow), at three gains (the CT's and the X-ray's attenuation scales differ)
SCATTER_GRID = (ScatterModel(),) + tuple(
    ScatterModel(f, s, g) for f, s, g in itertools.product(
        (0.1, 0.2, 0.3, 0.45), (0.05, 0.1, 0.2, 0.5), (0.7, 1.0, 1.4)))


@dataclass
class ScatterFit:
    """The best model and depth copy: ``model``, the copy's ``T_cam_from_world`` and depth
    ``offset_mm`` (camera axis, + away from the source), its ``similarity``, and the best
    similarity without scatter (``similarity_without``) at the copy ``offset_without_mm``;
    similarities at the size of the image."""

    model: ScatterModel
    T_cam_from_world: np.ndarray
    offset_mm: float
    similarity: float
    similarity_without: float
    offset_without_mm: float


def fit_scatter(renderer, image, K: np.ndarray, T: np.ndarray, pivot_world: np.ndarray, *,
                valid=None, weight=None,
                offsets_mm: tuple[float, ...] = (-30.0, -20.0, -10.0, 0.0, 10.0, 20.0),
                grid: tuple[ScatterModel, ...] = SCATTER_GRID,
                samples_per_ray: int = 64) -> ScatterFit:
    """Copies of ``T`` moved ``offsets_mm`` along the camera axis are refitted in their five
    other DoF without scatter (:class:`~registration.engine.depth_search.DepthProfiler`),
    rendered once, and every model of ``grid`` is scored on every copy; the best pair wins.
    ``image``: square (H, W) line integral with intrinsics ``K`` (px)."""
    prof = DepthProfiler(renderer, image, K, T, pivot_world, valid=valid, weight=weight,
                         samples_per_ray=samples_per_ray)
    start = torch.zeros(len(offsets_mm), 6)
    start[:, 5] = torch.as_tensor(offsets_mm, dtype=torch.float32)
    thetas = prof.refine(start)
    h, w = prof.img.shape
    hp = highpass_sigma_px(h, w)
    with torch.no_grad():
        drr = renderer.render(prof.poses(thetas), torch.as_tensor(K, dtype=torch.float32), h, w,
                              samples_per_ray=samples_per_ray).float()
        scores = torch.stack([
            combined_similarity(prof.img, m.apply(drr), prof.w, gc_weight=GC_WEIGHT,
                                highpass_sigma_px=hp)
            for m in grid])  # (models, copies)
    scores = torch.nan_to_num(scores, nan=-1.0)
    i_model, i_copy = divmod(int(torch.argmax(scores)), scores.shape[1])
    plain = scores[[k for k, m in enumerate(grid) if m.fraction <= 0.0]].max(dim=0).values
    return ScatterFit(grid[i_model], prof.pose(thetas[i_copy]), float(offsets_mm[i_copy]),
                      float(scores[i_model, i_copy]), float(plain.max()),
                      float(offsets_mm[int(torch.argmax(plain))]))
