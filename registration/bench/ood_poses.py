"""Out-of-distribution C-arm poses and intrinsics, wider than training on purpose.

Written apart from ``geometry.carm``/``registration.engine.dataset`` (only the documented angle
convention is shared, so that header angles mean what the site reads them as): LAO (+) /
RAO (-) about the patient's long axis, cranial (+) / caudal (-) toward the head; at 0/0
the view is AP (source posterior, camera +z = anterior = -y LPS, rows toward the feet,
columns toward the patient's right). ``spin_deg`` turns the detector about the viewing
axis. Frames: LPS mm world, OpenCV camera, ``T_cam_from_world``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

#: the benchmark's detector: square, this many pixels of this pitch (mm)
DETECTOR_PX = 320
DETECTOR_PITCH_MM = 0.96
#: close-ups are rendered at this many pixels over their window (a magnification mode)
CLOSEUP_PX = 224


def _axis_rot(axis: int, deg: float) -> np.ndarray:
    a = math.radians(deg)
    c, s = math.cos(a), math.sin(a)
    i, j = [(1, 2), (2, 0), (0, 1)][axis]
    R = np.eye(3)
    R[i, i], R[i, j], R[j, i], R[j, j] = c, -s, s, c
    return R


def carm_rotation(lao_deg: float, cranial_deg: float, spin_deg: float = 0.0) -> np.ndarray:
    """``R_world_from_cam`` (3x3): columns are the camera x, y, z axes in LPS."""
    ap = np.array([[-1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, -1.0, 0.0]])  # rows: x, y, z cam
    return _axis_rot(2, lao_deg) @ _axis_rot(0, -cranial_deg) @ ap.T @ _axis_rot(2, spin_deg)


def pose_from_carm(lao_deg: float, cranial_deg: float, spin_deg: float, sid_mm: float,
                   isocentre_lps: np.ndarray) -> np.ndarray:
    """``T_cam_from_world`` with the source ``sid_mm`` before ``isocentre_lps`` on the axis."""
    R = carm_rotation(lao_deg, cranial_deg, spin_deg)
    src = np.asarray(isocentre_lps, np.float64) - sid_mm * R[:, 2]
    T = np.eye(4)
    T[:3, :3] = R.T
    T[:3, 3] = -R.T @ src
    return T


@dataclass
class ShotGeometry:
    """Everything geometric about one shot: its ``family`` (ap / oblique / lateral),
    ``closeup`` flag, C-arm angles (deg), source-isocentre and source-detector distances
    (mm), isocentre (LPS mm), the camera ``K`` (3x3 px), image size, pixel pitch (mm) and
    the true pose."""

    family: str
    closeup: bool
    lao_deg: float
    cranial_deg: float
    spin_deg: float
    sid_mm: float
    sdd_mm: float
    isocentre_lps: np.ndarray
    K: np.ndarray
    width: int
    height: int
    pitch_mm: float
    T_true: np.ndarray
    window: dict = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return "closeup" if self.closeup else self.family

    def camera_json(self) -> dict:
        """``camera.json`` of docs/CONVENTIONS.md."""
        return {"width": self.width, "height": self.height, "K": self.K.tolist(),
                "pixel_spacing_mm": [self.pitch_mm, self.pitch_mm],
                "source_to_detector_mm": self.sdd_mm}


def plan_kinds(n: int) -> list[tuple[str, bool]]:
    """(family, close-up) per shot: of every six, two close-ups, one lateral, two AP and
    one oblique, so a third are close-ups and a sixth laterals."""
    cycle = [("ap", True), ("ap", False), ("lateral", False), ("oblique", True),
             ("ap", False), ("oblique", False)]
    return [cycle[i % 6] for i in range(n)]


def _angles(family: str, rng: np.random.Generator) -> tuple[float, float]:
    side = 1.0 if rng.random() < 0.5 else -1.0
    if family == "lateral":
        return side * rng.uniform(70, 110), rng.uniform(-30, 30)
    if family == "oblique":
        return side * rng.uniform(20, 60), rng.uniform(-30, 30)
    return rng.uniform(-20, 20), rng.uniform(-25, 25)


def sample_geometry(family: str, closeup: bool, bone_centre_lps: np.ndarray,
                    rng: np.random.Generator) -> ShotGeometry:
    """One shot's geometry: angles of its family, SID 600-850 mm, SDD 1000-1100 mm, the
    isocentre up to 40 mm from ``bone_centre_lps``, spin up to 10 deg, the principal point
    up to 15 px off the detector centre; a close-up is a window of 1/4 to 1/2 of the
    detector's side, off centre, rendered at :data:`CLOSEUP_PX` pixels."""
    lao, cran = _angles(family, rng)
    spin = rng.uniform(-10, 10)
    sid = rng.uniform(600, 850)
    sdd = rng.uniform(1000, 1100)
    d = rng.normal(size=3)
    shift = d / np.linalg.norm(d) * 40.0 * rng.uniform(0, 1) ** (1 / 3)  # uniform in the ball
    iso = np.asarray(bone_centre_lps, np.float64) + shift
    n, p = DETECTOR_PX, DETECTOR_PITCH_MM
    cx, cy = (n - 1) / 2 + rng.uniform(-15, 15), (n - 1) / 2 + rng.uniform(-15, 15)
    K = np.array([[sdd / p, 0.0, cx], [0.0, sdd / p, cy], [0.0, 0.0, 1.0]])
    width = height = n
    pitch = p
    window = {}
    if closeup:
        side = rng.uniform(0.25, 0.5) * n  # detector pixels
        # off centre: the window's centre drawn away from the middle, inside the detector
        lim = (n - side) / 2
        off = rng.uniform(0.3, 1.0, 2) * lim * np.where(rng.random(2) < 0.5, -1, 1)
        u0, v0 = (n - side) / 2 + off[0], (n - side) / 2 + off[1]
        a = CLOSEUP_PX / side  # output pixels per detector pixel
        # window pixel (a, b) covers detector (u0 - 0.5 + (a + 0.5) / a_, ...)
        K = np.array([[K[0, 0] * a, 0.0, (cx - u0 + 0.5) * a - 0.5],
                      [0.0, K[1, 1] * a, (cy - v0 + 0.5) * a - 0.5], [0.0, 0.0, 1.0]])
        width = height = CLOSEUP_PX
        pitch = p / a
        window = {"u0_px": float(u0), "v0_px": float(v0), "side_px": float(side),
                  "fraction": float(side / n)}
    T = pose_from_carm(lao, cran, spin, sid, iso)
    return ShotGeometry(family, closeup, float(lao), float(cran), float(spin), float(sid),
                        float(sdd), iso, K, width, height, float(pitch), T, window)
