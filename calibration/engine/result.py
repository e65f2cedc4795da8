"""The calibration result, its refusal type and the ``profile.json`` constants.

:class:`CalibrationResult` is what :func:`.calibrate.calibrate` and
:func:`.plate.calibrate_plate` return: the ``profile`` object of CONVENTIONS.md and the
fitted maps, with the pixels they were fitted to. Pixels of the stored image unless said.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from geometry.distortion import Poly2D
from refusal import Refused

from .detect import Detections
from .source import SourceEstimate

PROFILE_FORMAT = "orthofuse.calibration_profile"
QUADRANTS = {
    (0, 0): "upper-left",
    (1, 0): "upper-right",
    (0, 1): "lower-left",
    (1, 1): "lower-right",
}


class CalibrationError(Refused):
    """Calibration refused; the one-line message names the reason."""


@dataclass
class CalibrationResult:
    profile: dict
    forward: Poly2D
    inverse: Poly2D
    source: SourceEstimate | None
    K: np.ndarray | None
    flip: bool
    rotation_deg: int
    detections: Detections
    near_ids: list[str]
    near_detected_px: np.ndarray  # (N, 2) stored-image pixels (before the flip)
    near_target_px: np.ndarray  # (N, 2) ideal dewarped pixels of the fitted model
    near_used: np.ndarray  # (N,) bool (False: rejected outlier or held out)
    far_ids: list[str] = field(default_factory=list)
    far_detected_px: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    holdout_ids: list[str] = field(default_factory=list)

    def dewarp_points(self, stored_px: np.ndarray) -> np.ndarray:
        """Stored-image pixels (N, 2) -> dewarped pixels, applying the flip first."""
        p = np.asarray(stored_px, dtype=np.float64).reshape(-1, 2).copy()
        if self.flip:
            p[:, 0] = self.profile["width"] - 1 - p[:, 0]
        return self.forward.apply(p)
