"""Two-view geometry lives in :mod:`geometry.twoview`; this name is kept for the
calibration benchmark while it moves over."""

from geometry.twoview import (
    Triangulation,
    View,
    angle_between_views,
    epipolar_distance,
    epipolar_line,
    fundamental_matrix,
    triangulate_midpoint,
)

__all__ = [
    "Triangulation",
    "View",
    "angle_between_views",
    "epipolar_distance",
    "epipolar_line",
    "fundamental_matrix",
    "triangulate_midpoint",
]
