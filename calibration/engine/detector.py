"""The detector frame of CONVENTIONS.md: central projection onto the detector plane and
detector mm <-> image pixels.

Detector frame: mm, origin at the image centre ``((W-1)/2, (H-1)/2)`` pixels, x along
columns, y along rows, z = 0 the detector plane, the source at negative z.
"""

from __future__ import annotations

import numpy as np


def project_to_detector(xyz: np.ndarray, source: np.ndarray) -> np.ndarray:
    """Central projection of (N, 3) detector-frame points from ``source`` onto z = 0 (mm)."""
    xyz = np.asarray(xyz, dtype=np.float64).reshape(-1, 3)
    s = np.asarray(source, dtype=np.float64)
    t = -s[2] / (xyz[:, 2] - s[2])
    return s[:2] + (xyz[:, :2] - s[:2]) * t[:, None]


def mm_to_px(mm: np.ndarray, w: int, h: int, sx: float, sy: float) -> np.ndarray:
    """Detector mm (N, 2) -> pixels of a ``w x h`` image of spacing (sx, sy) mm."""
    return np.column_stack([mm[:, 0] / sx + (w - 1) / 2, mm[:, 1] / sy + (h - 1) / 2])


def px_to_mm(px: np.ndarray, w: int, h: int, sx: float, sy: float) -> np.ndarray:
    """Pixels (N, 2) of a ``w x h`` image of spacing (sx, sy) mm -> detector mm."""
    return np.column_stack([(px[:, 0] - (w - 1) / 2) * sx, (px[:, 1] - (h - 1) / 2) * sy])
