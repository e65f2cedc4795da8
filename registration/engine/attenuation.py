"""Hounsfield units -> linear attenuation coefficient (mm^-1), no Django imports.

A bilinear water/air/bone model for a C-arm beam of about 60-70 keV effective energy:

* air (HU <= -1000, and everything below ``AIR_CUTOFF_HU`` = -950 HU, which absorbs the
  noise of CT air so that it does not add a positive bias along long air paths):
  ``mu = 0``;
* air-water mixtures (-950 < HU <= 0): ``mu = MU_WATER * (1 + HU / 1000)``;
* water-bone mixtures (HU > 0): ``mu = MU_WATER + HU * (MU_BONE - MU_WATER) / BONE_HU``.

Coefficients (NIST XCOM mass attenuation at ~65 keV):

* water: 0.200 cm^2/g x 1.00 g/cm^3 -> ``MU_WATER = 0.0200 mm^-1``;
* cortical bone (ICRU, 1.92 g/cm^3): ~0.298 cm^2/g -> ``MU_BONE = 0.0573 mm^-1`` taken
  to correspond to ``BONE_HU = 1900`` HU on a 120 kVp CT.

Line integrals ``sum(mu * step_mm)`` are therefore unitless optical depths,
``-log(I / I0)``.
"""

from __future__ import annotations

import numpy as np
import torch

MU_WATER_PER_MM = 0.0200
MU_BONE_PER_MM = 0.0573
BONE_HU = 1900.0
AIR_CUTOFF_HU = -950.0
DEFAULT_BONE_THRESHOLD_HU = 200.0


def hu_to_mu(hu: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
    """Linear attenuation in mm^-1 for an array of HU (NumPy float32 or torch, same kind
    out). See the module docstring for the model."""
    slope_bone = (MU_BONE_PER_MM - MU_WATER_PER_MM) / BONE_HU
    if isinstance(hu, torch.Tensor):
        h = hu.to(torch.float32) if not hu.is_floating_point() else hu
        soft = MU_WATER_PER_MM * (1.0 + h / 1000.0)
        bone = MU_WATER_PER_MM + h * slope_bone
        mu = torch.where(h > 0, bone, soft)
        return torch.where(h <= AIR_CUTOFF_HU, torch.zeros_like(mu), mu)
    h = np.asarray(hu, dtype=np.float32)
    soft = MU_WATER_PER_MM * (1.0 + h / 1000.0)
    bone = MU_WATER_PER_MM + h * np.float32(slope_bone)
    mu = np.where(h > 0, bone, soft)
    mu = np.where(h <= AIR_CUTOFF_HU, np.float32(0.0), mu)
    return mu.astype(np.float32, copy=False)


def mu_to_hu(mu: np.ndarray) -> np.ndarray:
    """Inverse of :func:`hu_to_mu` on its invertible range (mu > 0): HU for mm^-1."""
    mu = np.asarray(mu, dtype=np.float64)
    slope_bone = (MU_BONE_PER_MM - MU_WATER_PER_MM) / BONE_HU
    soft = (mu / MU_WATER_PER_MM - 1.0) * 1000.0
    bone = (mu - MU_WATER_PER_MM) / slope_bone
    return np.where(mu > MU_WATER_PER_MM, bone, soft)
