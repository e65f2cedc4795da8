"""Preparing a stored X-ray for registration: line-integral form, field mask, and
resampling to the network's square input with the intrinsics adjusted.

Pixel convention: u = column, v = row, top-left pixel centre (0, 0). Padding to a square
is centred; resampling from size S to N maps ``u -> (u + 0.5) N / S - 0.5``.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


def line_integral_from_pixels(
    pixels: np.ndarray, photometric: str = "MONOCHROME2", *, bits_stored: int | None = None,
    polarity: str = "detect",
) -> tuple[np.ndarray, np.ndarray]:
    """Stored pixels -> ``(line integral (H, W) float32 bone bright, field mask (H, W) bool)``.

    :func:`line_integral_with_info` without the figures."""
    li, mask, _ = line_integral_with_info(pixels, photometric, bits_stored=bits_stored,
                                          polarity=polarity)
    return li, mask


def line_integral_with_info(
    pixels: np.ndarray, photometric: str = "MONOCHROME2", *, bits_stored: int | None = None,
    polarity: str = "detect",
) -> tuple[np.ndarray, np.ndarray, dict]:
    """Stored pixels -> ``(line integral (H, W) float32 bone bright, field mask (H, W) bool,
    {"polarity", "form", "detected", ...})``: the one photometric normalisation of every
    X-ray entering registration.

    Wraps :func:`registration.engine.intensity.line_integral_with_form` (which masks
    collimator shutters and the dark surround of an image intensifier). ``polarity``:
    ``detect`` (default: read from the image's quantum noise, the header convention when
    the noise cannot tell), ``auto`` (the header convention: MONOCHROME2 = bone dark C-arm
    display, MONOCHROME1 = bone bright), ``bone_dark`` or ``bone_bright``. The form (linear
    counts or a gamma curve of them, or a log display) is always read from the noise, so
    linear, gamma, log-display and MONOCHROME1 copies of one shot give the same image up
    to gain; the network and the similarity normalise gain and offset away.
    """
    from registration.engine.intensity import line_integral_with_form

    li, mask, info = line_integral_with_form(np.asarray(pixels), photometric,
                                             bits_stored=bits_stored, polarity=polarity,
                                             form="auto")
    return np.asarray(li, dtype=np.float32), np.asarray(mask, dtype=bool), info


def resolved_polarity(photometric: str, polarity: str = "auto") -> str:
    if polarity != "auto":
        return polarity
    return "bone_dark" if str(photometric).strip().upper() == "MONOCHROME2" else "bone_bright"


@dataclass
class NetworkImage:
    """An image resampled onto a square grid with its intrinsics."""

    image: np.ndarray  # (N, N) float32, invalid pixels 0
    valid: np.ndarray  # (N, N) bool
    K: np.ndarray  # (3, 3) intrinsics of this grid


def to_square(image: np.ndarray, valid: np.ndarray, K: np.ndarray, size: int) -> NetworkImage:
    """Pad ``image`` (H, W) to a centred square, resample to ``size`` pixels, adjust ``K``."""
    img = np.asarray(image, dtype=np.float32)
    H, W = img.shape
    S = max(H, W)
    pt, pl = (S - H) // 2, (S - W) // 2
    fill = float(np.mean(img[valid])) if np.any(valid) else 0.0
    sq = np.full((S, S), fill, dtype=np.float32)
    sq[pt : pt + H, pl : pl + W] = np.where(valid, img, fill)
    vm = np.zeros((S, S), dtype=np.float32)
    vm[pt : pt + H, pl : pl + W] = valid
    if S != size:
        interp = cv2.INTER_AREA if size < S else cv2.INTER_LINEAR
        sq = cv2.resize(sq, (size, size), interpolation=interp)
        vm = cv2.resize(
            vm, (size, size), interpolation=cv2.INTER_AREA if size < S else cv2.INTER_LINEAR
        )
    v = vm > 0.99
    a = size / S
    K2 = np.array(K, dtype=np.float64).copy()
    K2[0, 2] += pl
    K2[1, 2] += pt
    K2[0, 0] *= a
    K2[0, 1] *= a
    K2[1, 1] *= a
    K2[0, 2] = (K2[0, 2] + 0.5) * a - 0.5
    K2[1, 2] = (K2[1, 2] + 0.5) * a - 0.5
    return NetworkImage(np.where(v, sq, 0.0).astype(np.float32), v, K2)
