"""An X-ray formation chain for benchmark shots, written apart from the training
augmentation (``engine.xray_sim``, ``engine.dataset``) so that it shares none of its
choices.

Counts (photons per pixel): a primary ``N0 * heel(u, v) * exp(-line integral)`` with
``N0`` set by automatic exposure (a set point for the median primary in the central third
of the field), scatter as a broad Gaussian blur of the primary scaled to a scatter
fraction, collimator blades that leave only a little scatter behind them, Poisson noise,
detector blur and a little read noise. Stored forms (16-bit): linear counts (MONOCHROME2),
a log display (MONOCHROME2, bone dark), MONOCHROME1 (a bone-white display) and a gamma
curve (MONOCHROME2).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy.ndimage import gaussian_filter

DISPLAYS = ("linear", "log", "mono1", "gamma")
FULL_SCALE = 65535.0


@dataclass
class ChainParams:
    """One shot's imaging settings (counts per pixel, pixels, fractions)."""

    aec_set_point: float
    scatter_fraction: float
    scatter_sigma_px: float
    detector_sigma_px: float
    heel: float  # relative tube output change across the field (+- heel / 2)
    heel_angle_deg: float
    blades: tuple[float, float, float, float]  # left, right, top, bottom fractions covered
    read_noise: float
    display: str
    gamma: float
    gain: float  # stored linear value per count

    def to_json(self) -> dict:
        d = asdict(self)
        d["blades"] = list(self.blades)
        return d


def sample_params(rng: np.random.Generator, display: str | None = None) -> ChainParams:
    """Random settings: AEC set point 300-8000 counts, scatter fraction 0.1-0.45 blurred by
    15-60 px, detector blur 0.4-1.5 px, heel effect in 60 % of shots, blades in half."""
    blades = tuple(float(x) for x in rng.uniform(0.03, 0.15, 4) * (rng.random(4) < 0.6)) \
        if rng.random() < 0.5 else (0.0, 0.0, 0.0, 0.0)
    return ChainParams(
        aec_set_point=float(np.exp(rng.uniform(np.log(300), np.log(8000)))),
        scatter_fraction=float(rng.uniform(0.1, 0.45)),
        scatter_sigma_px=float(rng.uniform(15, 60)),
        detector_sigma_px=float(rng.uniform(0.4, 1.5)),
        heel=float(rng.uniform(0.1, 0.3)) if rng.random() < 0.6 else 0.0,
        heel_angle_deg=float(rng.uniform(0, 360)),
        blades=blades,  # type: ignore[arg-type]
        read_noise=float(rng.uniform(0.5, 3.0)),
        display=display or str(rng.choice(DISPLAYS)),
        gamma=float(rng.uniform(0.35, 0.7)),
        gain=float(rng.uniform(2.0, 6.0)),
    )


def field_mask(shape: tuple[int, int], blades: tuple[float, float, float, float]) -> np.ndarray:
    """(H, W) bool: pixels not behind a collimator blade (fractions of width/height)."""
    H, W = shape
    m = np.zeros(shape, bool)
    left, right, top, bottom = blades
    m[int(round(top * H)):H - int(round(bottom * H)), int(round(left * W)):W - int(round(right * W))] = True
    return m


def expected_counts(line_integral: np.ndarray, p: ChainParams) -> np.ndarray:
    """(H, W) float64 expected photons per pixel before noise."""
    L = np.asarray(line_integral, np.float64)
    H, W = L.shape
    vv, uu = np.mgrid[0:H, 0:W]
    a = np.radians(p.heel_angle_deg)
    ramp = ((uu / max(W - 1, 1) - 0.5) * np.cos(a) + (vv / max(H - 1, 1) - 0.5) * np.sin(a))
    heel = 1.0 + p.heel * ramp
    field = field_mask(L.shape, p.blades)
    rel = heel * np.exp(-L) * field  # primary per unit tube output
    centre = np.zeros_like(field)
    centre[H // 3:H - H // 3, W // 3:W - W // 3] = True
    ref = rel[centre & field] if np.any(centre & field) else rel[field]
    n0 = p.aec_set_point / max(float(np.median(ref)), 1e-12)
    n0 = min(n0, 5e6)  # the tube's limit
    primary = n0 * rel
    blur = gaussian_filter(primary, p.scatter_sigma_px, mode="nearest")
    k = p.scatter_fraction / (1.0 - p.scatter_fraction) * primary[field].mean() / max(blur[field].mean(), 1e-12)
    scatter = k * blur
    return primary + np.where(field, scatter, 0.15 * scatter)


def detected_counts(line_integral: np.ndarray, p: ChainParams,
                    rng: np.random.Generator) -> np.ndarray:
    """(H, W) float64 detected counts: Poisson noise, detector blur, read noise (>= 0)."""
    lam = expected_counts(line_integral, p)
    c = rng.poisson(lam).astype(np.float64)
    c = gaussian_filter(c, p.detector_sigma_px, mode="nearest")
    return np.maximum(c + rng.normal(0.0, p.read_noise, c.shape), 0.0)


def log_display(counts: np.ndarray) -> np.ndarray:
    """16-bit display values rising with log counts (bone dark), windowed to the 0.2-99.8th
    percentiles of the exposed pixels' log counts."""
    lg = np.log1p(np.maximum(counts, 0.0))
    lo, hi = np.percentile(lg[counts > 0] if np.any(counts > 0) else lg, [0.2, 99.8])
    return np.clip((lg - lo) / max(hi - lo, 1e-9), 0.0, 1.0) * (0.9 * FULL_SCALE) + 0.05 * FULL_SCALE


def encode(counts: np.ndarray, p: ChainParams, file_format: str) -> tuple[np.ndarray, str]:
    """``(uint16 pixels (H, W), PhotometricInterpretation)`` of ``p.display``. ``mono1`` is
    a bone-white display: in DICOM the log display stored as MONOCHROME1 (a viewer inverts
    it); a PNG has no photometric field, so there the inverted values are stored."""
    c = np.maximum(np.asarray(counts, np.float64), 0.0)
    if p.display == "linear":
        top = np.percentile(c, 99.9)
        g = min(p.gain, 0.95 * FULL_SCALE / max(top, 1e-9))
        out, phot = c * g, "MONOCHROME2"
    elif p.display == "log":
        out, phot = log_display(c), "MONOCHROME2"
    elif p.display == "mono1":
        d = log_display(c)
        out, phot = (d, "MONOCHROME1") if file_format == "dicom" else (FULL_SCALE - d, "MONOCHROME2")
    elif p.display == "gamma":
        top = max(float(c.max()), 1e-9)
        out, phot = (c / top) ** p.gamma * FULL_SCALE, "MONOCHROME2"
    else:
        raise ValueError(f"unknown display {p.display!r}")
    return np.clip(np.rint(out), 0, FULL_SCALE).astype(np.uint16), phot
