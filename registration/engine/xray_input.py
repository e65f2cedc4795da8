"""Preparing a stored X-ray for registration: line-integral form, collimator mask, and
resampling to the network's square input with the intrinsics adjusted.

Pixel convention: u = column, v = row, top-left pixel centre (0, 0). Padding to a square
is centred; resampling from size S to N maps ``u -> (u + 0.5) N / S - 0.5``.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


def _fallback_line_integral(pixels: np.ndarray, photometric: str) -> np.ndarray:
    x = np.asarray(pixels, dtype=np.float32)
    if photometric.upper() == "MONOCHROME1":
        x = float(np.max(x)) - x
    return x - float(np.min(x))


def line_integral_from_pixels(pixels: np.ndarray, photometric: str = "MONOCHROME2") -> np.ndarray:
    """Stored pixels -> attenuation-positive image (bone bright), float32 (H, W).

    Uses :func:`registration.engine.intensity.to_line_integral` when available; otherwise a
    display-convention conversion (MONOCHROME2 kept, MONOCHROME1 inverted). The network
    normalises each image, so the remaining gain/offset/gamma differences do not matter.
    """
    try:
        from registration.engine.intensity import to_line_integral
    except ImportError:
        return _fallback_line_integral(pixels, photometric)
    return np.asarray(
        to_line_integral(np.asarray(pixels, dtype=np.float32), photometric), dtype=np.float32
    )


def collimator_mask(image: np.ndarray, min_area_fraction: float = 0.002) -> np.ndarray:
    """``True`` inside the exposed field: flat (zero local variation) regions that touch the
    image border (collimator shutters, iris, zero padding) are marked ``False``."""
    img = np.asarray(image, dtype=np.float32)
    H, W = img.shape
    rng = float(np.ptp(img)) if img.size else 0.0
    if rng == 0.0:
        return np.ones((H, W), dtype=bool)
    eps = 1e-4 * rng
    mx = cv2.dilate(img, np.ones((3, 3), np.uint8))
    mn = cv2.erode(img, np.ones((3, 3), np.uint8))
    flat = ((mx - mn) <= eps).astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(flat, connectivity=4)
    invalid = np.zeros((H, W), dtype=bool)
    border = set(
        np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])).tolist()
    )
    for lab in border:
        if lab == 0:
            continue
        if stats[lab, cv2.CC_STAT_AREA] >= min_area_fraction * H * W:
            invalid |= labels == lab
    if invalid.any():
        invalid = cv2.dilate(invalid.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    return ~invalid


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
