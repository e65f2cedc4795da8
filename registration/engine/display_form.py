"""How a stored X-ray's brightness depends on the detected exposure, read from its own
quantum noise (no Django).

A C-arm image may be stored as linear detector counts, with a gamma curve, as a log
display (the way many C-arms export) and with either polarity (MONOCHROME1/2 flags are a
convention, not a fact). Poisson noise tells them apart: the photon count ``I`` at a pixel
has variance ``I`` (up to a constant gain, scatter and detector blur included), so for the
right transfer ``b = f(I)`` the noise standard deviation seen in ``b`` is
``s(b) = |f'(I)| sqrt(I)``. Measured in bins of local brightness ``m``:

* power (linear counts, gamma): ``b = g I^gamma`` -> ``log s = (1 - 1/(2 gamma)) log m + c``
  (brightness grows with exposure, bone dark) or the same in ``M - m`` (inverted);
* log display: ``b = c log I + d`` -> ``log s = -m / (2c) + c'`` (bone dark) or
  ``+m / (2c)`` (bone bright, already attenuation-like).

Each family is a straight line in its own coordinates; the one whose line fits the binned
noise best (and whose fitted gamma or log scale is physical) wins. When the image has no
measurable noise (a noise-free render) or the families fit about equally well, the
caller's header convention stands (:attr:`TransferEstimate.confident` False).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

# plausible display gammas (power family) and line-integral spans of a log display
GAMMA_RANGE = (0.25, 4.0)
LOG_SPAN_RANGE = (0.3, 12.0)  # (p99 - p1 of the brightness) / c, in attenuation units
# the winner's residual must be below this fraction of the best other-polarity family's
CONFIDENCE_RATIO = 0.7
# the binned log noise must span at least this much (a factor 1.5) to read a polarity or a
# log display: near gamma 0.5 the noise is flat whatever the polarity
MIN_NOISE_VARIATION = 0.4
MIN_BINS = 6
MIN_PIXELS_PER_BIN = 200


@dataclass
class TransferEstimate:
    """``polarity``: "bone_dark" (brightness grows with exposure) or "bone_bright";
    ``form``: "power" (linear counts or a gamma curve; ``gamma``) or "log" (a log display;
    ``log_scale`` = brightness units per attenuation unit); ``confident`` False when the
    noise could not decide (then only the figures are informative); ``residuals``: RMS
    misfit (log noise units) of every family tried."""

    polarity: str
    form: str
    confident: bool
    gamma: float = 1.0
    log_scale: float = 1.0
    residuals: dict | None = None
    n_bins: int = 0


def noise_profile(b: np.ndarray, mask: np.ndarray, n_bins: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """``(local mean m, robust noise std s)`` per brightness bin of ``b`` inside ``mask``.

    The noise is the residual of ``b`` against its 3x3 mean (linear ramps cancel), its
    spread the MAD over the flattest third of each bin of the 5x5 local mean (anatomy
    edges leave residuals that are not noise). Pixels
    near the image's extreme values (saturated or floored: no noise) are left out; bins
    with too few pixels or no spread are dropped."""
    x = np.asarray(b, np.float32)
    inner = cv2.erode(np.asarray(mask, np.uint8), np.ones((7, 7), np.uint8)).astype(bool)
    # clipped pixels (saturated or floored) have no noise: leave their neighbourhoods out
    k5 = np.ones((5, 5), np.uint8)
    inner &= cv2.dilate(x, k5) < float(x.max())
    inner &= cv2.erode(x, k5) > float(x.min())
    if inner.sum() < MIN_BINS * MIN_PIXELS_PER_BIN:
        return np.zeros(0), np.zeros(0)
    resid = (x - cv2.blur(x, (3, 3), borderType=cv2.BORDER_REFLECT))[inner].astype(np.float64)
    smooth = cv2.blur(x, (5, 5), borderType=cv2.BORDER_REFLECT)
    m = smooth[inner].astype(np.float64)
    grad = np.hypot(cv2.Sobel(smooth, cv2.CV_32F, 1, 0), cv2.Sobel(smooth, cv2.CV_32F, 0, 1))[inner]
    edges = np.unique(np.percentile(m, np.linspace(1, 99, n_bins + 1)))
    idx = np.digitize(m, edges[1:-1])
    ms, ss = [], []
    for k in range(len(edges) - 1):
        sel = np.flatnonzero(idx == k)
        if len(sel) < MIN_PIXELS_PER_BIN:
            continue
        # the flattest third of the bin: anatomy edges leave residuals that are not noise
        sel = sel[grad[sel] <= np.percentile(grad[sel], 33)]
        r = resid[sel]
        s = 1.4826 * float(np.median(np.abs(r - np.median(r))))
        if s > 0:
            ms.append(float(np.median(m[sel])))
            ss.append(s)
    return np.asarray(ms), np.asarray(ss)


def _line_fit(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(slope, RMS residual) of the least-squares line ``y ~ a x + c``."""
    A = np.stack([x, np.ones_like(x)], 1)
    coef, *_ = np.linalg.lstsq(A, y, rcond=None)
    return float(coef[0]), float(np.sqrt(np.mean((A @ coef - y) ** 2)))


def estimate_transfer(b: np.ndarray, mask: np.ndarray, *, full_scale: float | None = None,
                      header_polarity: str = "bone_dark",
                      fixed_polarity: str | None = None) -> TransferEstimate:
    """Which brightness transfer (see the module docstring) fits the noise of ``b`` (H, W)
    inside ``mask``; ``full_scale`` is the largest storable value (``M`` of an inverted
    power image; default the image maximum). Falls back to ``header_polarity`` and the
    power form, not confident, when the noise cannot decide. ``fixed_polarity``: the
    polarity is given; only the form is read from the noise."""
    if fixed_polarity is not None:
        header_polarity = fixed_polarity
    fallback = TransferEstimate(header_polarity, "power", False)
    b = np.asarray(b, np.float64)
    m, s = noise_profile(b, mask)
    if len(m) < MIN_BINS:
        return fallback
    lo, hi = float(np.percentile(b[mask], 1)), float(np.percentile(b[mask], 99))
    span = hi - lo
    # no measurable noise: quantisation steps or a noise-free render
    if span <= 0 or float(np.median(s)) < max(1e-4 * span, 0.5 if _integral(b) else 0.0):
        fallback.n_bins = len(m)
        return fallback
    M = float(full_scale) if full_scale else float(b.max())
    M = max(M, float(m.max())) * (1.0 + 1e-6) + 1e-9
    ls = np.log(s)
    fits: dict[str, tuple[float, float]] = {}
    if m.min() > 0:
        fits["power_dark"] = _line_fit(np.log(m), ls)
    fits["power_bright"] = _line_fit(np.log(M - m), ls)
    fits["log_dark"] = _line_fit(m, ls)
    fits["log_bright"] = fits["log_dark"]
    cands: list[TransferEstimate] = []
    for name, (slope, rms) in fits.items():
        form, pol = name.split("_")
        polarity = "bone_dark" if pol == "dark" else "bone_bright"
        if form == "power":
            if slope >= 1.0:
                continue
            gamma = 1.0 / (2.0 * (1.0 - slope))
            if not GAMMA_RANGE[0] <= gamma <= GAMMA_RANGE[1]:
                continue
            cands.append(TransferEstimate(polarity, "power", True, gamma=gamma,
                                          residuals={"rms": rms}))
        else:
            if slope == 0 or (slope < 0) != (pol == "dark"):
                continue
            c = 1.0 / (2.0 * abs(slope))
            if not LOG_SPAN_RANGE[0] <= span / c <= LOG_SPAN_RANGE[1]:
                continue
            cands.append(TransferEstimate(polarity, "log", True, log_scale=c,
                                          residuals={"rms": rms}))
    residuals = {k: round(v[1], 4) for k, v in fits.items()}
    fallback.residuals, fallback.n_bins = residuals, len(m)
    if not cands:
        return fallback
    cands.sort(key=lambda e: e.residuals["rms"])
    best = cands[0]
    # polarity: the best family of the other polarity must fit clearly worse, and the noise
    # must vary enough over the image to tell (near gamma 0.5 it is flat either way)
    other = [e for e in cands if e.polarity != best.polarity]
    variation = float(np.ptp(ls)) if len(ls) else 0.0
    confident = (variation >= MIN_NOISE_VARIATION
                 and (not other or best.residuals["rms"] < CONFIDENCE_RATIO * other[0].residuals["rms"]))
    polarity = best.polarity if confident and fixed_polarity is None else header_polarity
    # form, given the polarity: whichever family of it fits the noise better; flat noise
    # cannot tell, and -log of a power curve is right up to scale for any gamma
    same = [e for e in cands if e.polarity == polarity]
    if variation < MIN_NOISE_VARIATION:
        same = [e for e in same if e.form == "power"]
    if not same:
        return fallback
    pick = same[0]
    return TransferEstimate(polarity, pick.form, confident, gamma=pick.gamma,
                            log_scale=pick.log_scale, residuals=residuals, n_bins=len(m))


def _integral(b: np.ndarray) -> bool:
    """True when every value is an integer (stored pixels, quantised)."""
    sample = b.ravel()[:: max(1, b.size // 10000)]
    return bool(np.all(sample == np.round(sample)))
