"""Realistic C-arm X-ray simulation on top of a DRR (line integrals), no Django imports.

Pipeline (all optional steps off when their parameter is 0/None):

1. primary photons ``I = dose * heel(v) * exp(-line)``; the heel effect is a linear
   gain ramp along the anode-cathode axis (image rows by default):
   ``heel = 1 + heel_strength * (0.5 - v / (H - 1))`` (top brighter);
2. collimator shutters: rows/columns beyond the given border fractions receive no
   photons;
3. scatter: ``I += scatter_fraction * mean(I) * blur(I / mean(I), sigma)`` (a broad
   Gaussian of the primary, scatter-to-primary ratio ``scatter_fraction``);
4. image-intensifier distortion: the distorted image at pixel ``(xd, yd)`` is the
   (dewarped) image sampled at ``forward(xd, yd)`` of a calibration-style polynomial
   (CONVENTIONS.md "Distortion model");
5. quantum noise: Poisson counts with mean ``I`` (``dose`` = photons per pixel of the
   unattenuated beam);
6. circular image-intensifier field: outside a circle (radius a fraction of the smaller
   image side) the output is black;
7. detector: ``value = gain * (counts / dose) ** gamma`` as a fraction of full scale,
   quantised to ``bits`` bits, MONOCHROME2 (bright = more exposure, bone dark).

:func:`registration.engine.intensity.to_line_integral` inverts steps 1 and 7 (for
``gamma = 1``) back to line-integral form.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from geometry.distortion import Poly2D


@dataclass
class XraySimParams:
    """Parameters of :func:`simulate_xray` (see module docstring)."""

    dose: float = 2.0e4  # photons per pixel, unattenuated
    heel_strength: float = 0.15
    scatter_fraction: float = 0.15
    scatter_sigma_px: float = 25.0
    collimator: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)  # left, top, right, bottom
    ii_radius_fraction: float | None = 0.49  # of min(H, W); None: no circular field
    gain: float = 0.9
    gamma: float = 1.0
    bits: int = 16
    distortion: dict | None = None  # forward polynomial (distorted -> dewarped pixels)


@dataclass
class SimulatedXray:
    """``pixels`` (H, W) uint16/uint8 stored values, ``photometric``, ``bits_stored`` and the
    exposed-field ``mask``."""

    pixels: np.ndarray
    photometric: str
    bits_stored: int
    mask: np.ndarray


def distort_image(image: np.ndarray, forward_poly: dict, *, fill: float = 0.0) -> np.ndarray:
    """Simulated distorted image: each distorted pixel samples the dewarped ``image`` at
    ``forward(xd, yd)`` (bilinear, ``fill`` outside)."""
    img = np.asarray(image, dtype=np.float32)
    H, W = img.shape
    yd, xd = np.mgrid[0:H, 0:W].astype(np.float64)
    xu, yu = Poly2D.from_dict(forward_poly)(xd, yd)
    return cv2.remap(
        img,
        xu.astype(np.float32),
        yu.astype(np.float32),
        interpolation=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=float(fill),
    )


def aec_dose(
    line_integral: np.ndarray,
    target_photons: float,
    *,
    field: np.ndarray | None = None,
    central_fraction: float = 0.5,
    max_dose: float = 2.5e5,
) -> float:
    """Unattenuated dose (photons per pixel) chosen by automatic exposure control.

    A C-arm's automatic brightness control raises the tube output for a thick patient
    until the detector signal in the centre of the field reaches its set point. Here: the
    dose at which the median primary photon count ``dose * exp(-line)`` over the central
    ``central_fraction`` (of each side) of the exposed ``field`` equals ``target_photons``,
    capped at the tube's ``max_dose``. ``line_integral`` (H, W), attenuation-positive.
    """
    if target_photons <= 0 or max_dose <= 0:
        raise ValueError("target_photons and max_dose must be positive")
    if not 0 < central_fraction <= 1:
        raise ValueError(f"central_fraction must be in (0, 1], got {central_fraction}")
    line = np.asarray(line_integral, dtype=np.float64)
    H, W = line.shape
    centre = np.zeros((H, W), dtype=bool)
    mh, mw = int(round(H * (1 - central_fraction) / 2)), int(round(W * (1 - central_fraction) / 2))
    centre[mh : H - mh, mw : W - mw] = True
    exposed = np.ones((H, W), dtype=bool) if field is None else np.asarray(field, dtype=bool)
    region = centre & exposed
    if not region.any():  # a field off the centre: meter all of it
        region = exposed
    if not region.any():
        return float(max_dose)
    transmitted = float(np.median(np.exp(-np.clip(line[region], 0.0, None))))
    if transmitted <= 0:
        return float(max_dose)
    return float(min(max_dose, target_photons / transmitted))


def simulate_xray(
    line_integral: Any,
    params: XraySimParams | None = None,
    *,
    rng: np.random.Generator | None = None,
    detector: np.ndarray | None = None,
) -> SimulatedXray:
    """Stored-form simulated X-ray of a (H, W) line-integral image (NumPy or torch).

    ``detector`` (H, W) bool marks the pixels that exist on the detector (default: all).
    A close-up window that reaches past the detector's edge has pixels outside it: they
    receive no photons, so they neither scatter nor glare into the image, and they are
    stored as 0 like collimated pixels."""
    p = params or XraySimParams()
    if hasattr(line_integral, "detach"):
        line_integral = line_integral.detach().cpu().numpy()
    line = np.asarray(line_integral, dtype=np.float64)
    if line.ndim != 2:
        raise ValueError(f"line integral image must be 2-D, got shape {line.shape}")
    if not np.all(np.isfinite(line)):
        raise ValueError("line integral image contains NaN or infinite values")
    if p.dose <= 0:
        raise ValueError(f"dose must be positive, got {p.dose}")
    if p.bits not in (8, 10, 12, 14, 16):
        raise ValueError(f"bits must be 8, 10, 12, 14 or 16, got {p.bits}")
    rng = rng or np.random.default_rng()
    H, W = line.shape
    v = np.arange(H, dtype=np.float64)[:, None]
    heel = 1.0 + p.heel_strength * (0.5 - v / max(H - 1, 1))
    intensity = p.dose * heel * np.exp(-np.clip(line, 0.0, None))
    intensity = np.broadcast_to(intensity, (H, W)).copy()

    exposed = np.ones((H, W), dtype=bool)
    if detector is not None:
        detector = np.asarray(detector, dtype=bool)
        if detector.shape != (H, W):
            raise ValueError(
                f"detector mask is {detector.shape[1]}x{detector.shape[0]} pixels but the "
                f"image is {W}x{H}"
            )
        exposed &= detector
    left, top, right, bottom = p.collimator
    exposed[:, : int(round(left * W))] = False
    exposed[: int(round(top * H)), :] = False
    if right > 0:
        exposed[:, W - int(round(right * W)) :] = False
    if bottom > 0:
        exposed[H - int(round(bottom * H)) :, :] = False
    intensity[~exposed] = 0.0

    if p.scatter_fraction > 0:
        mean = float(intensity[exposed].mean()) if exposed.any() else 0.0
        if mean > 0:
            blurred = cv2.GaussianBlur(
                (intensity / mean).astype(np.float32), (0, 0), sigmaX=float(p.scatter_sigma_px)
            )
            intensity = intensity + p.scatter_fraction * mean * blurred.astype(np.float64)

    if p.distortion is not None:
        intensity = distort_image(intensity, p.distortion).astype(np.float64)
        exposed = distort_image(exposed.astype(np.float32), p.distortion) > 0.5

    counts = rng.poisson(np.clip(intensity, 0.0, None)).astype(np.float64)

    field = exposed.copy()
    if p.ii_radius_fraction:
        yy, xx = np.mgrid[0:H, 0:W]
        r = p.ii_radius_fraction * min(H, W)
        field &= (xx - (W - 1) / 2) ** 2 + (yy - (H - 1) / 2) ** 2 <= r * r
    full = 2**p.bits - 1
    signal = p.gain * (counts / p.dose) ** p.gamma
    stored = np.clip(np.round(signal * full), 0, full)
    stored[~field] = 0
    dtype = np.uint8 if p.bits == 8 else np.uint16
    return SimulatedXray(stored.astype(dtype), "MONOCHROME2", p.bits, field)
