"""Detector mm <-> image pixels, and which pixels a field or a point set covers.

Pixels ``(u, v)`` of the flip-corrected image (centre of the top-left pixel is (0, 0));
detector-frame mm with the origin under the image centre (CONVENTIONS.md). The
distortion polynomials map stored (flip-corrected) pixels to dewarped pixels.
"""

from __future__ import annotations

import cv2
import numpy as np

from geometry.distortion import Poly2D, invert_numerically

from .detector import project_to_detector


def to_px(mm: np.ndarray, w: int, h: int, sx: float, sy: float) -> np.ndarray:
    """Detector-plane mm (N, 2) -> pixels of a ``w`` x ``h`` image of spacing (sx, sy)."""
    return np.column_stack([mm[:, 0] / sx + (w - 1) / 2, mm[:, 1] / sy + (h - 1) / 2])


def to_mm(px: np.ndarray, w: int, h: int, sx: float, sy: float) -> np.ndarray:
    """Pixels (N, 2) -> detector-plane mm (the inverse of :func:`to_px`)."""
    return np.column_stack([(px[:, 0] - (w - 1) / 2) * sx, (px[:, 1] - (h - 1) / 2) * sy])


def predicted_stored(poly: Poly2D, xyz, source, w, h, sx, sy, flip) -> np.ndarray:
    """Stored-image pixels where beads ``xyz`` (mm) appear: central projection from
    ``source``, the distortion ``poly`` undone, the flip applied."""
    und = to_px(project_to_detector(xyz, source), w, h, sx, sy)
    p = invert_numerically(poly, und, guess=und)
    if flip:
        p[:, 0] = w - 1 - p[:, 0]
    return p


def inside_mask(mask: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Points (N, 2) pixels whose nearest pixel lies in ``mask`` (False outside the image)."""
    h, w = mask.shape
    iu = np.round(p[:, 0]).astype(int)
    iv = np.round(p[:, 1]).astype(int)
    ok = (iu >= 0) & (iu < w) & (iv >= 0) & (iv < h) & np.isfinite(p).all(axis=1)
    out = np.zeros(len(p), bool)
    out[ok] = mask[iv[ok], iu[ok]]
    return out


def inside_hull(pts: np.ndarray, q: np.ndarray, margin: float) -> np.ndarray:
    """Points ``q`` at least ``margin`` pixels inside the convex hull of ``pts``."""
    if len(pts) < 3 or len(q) == 0:
        return np.ones(len(q), bool)
    hull = cv2.convexHull(np.asarray(pts, np.float32))
    return np.array(
        [cv2.pointPolygonTest(hull, (float(x), float(y)), True) >= margin for x, y in q], bool
    )
