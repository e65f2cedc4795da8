"""Stored X-ray pixels -> line-integral form (CONVENTIONS.md "X-ray intensity"), no Django.

Every image entering registration is converted once to attenuation-positive form (bone
bright, air about 0, roughly ``-log(I / I0)``), the form of every DRR.

Model:

1. Displayed brightness ``b``: the stored value for MONOCHROME2, ``maxval - value`` for
   MONOCHROME1 (``maxval = 2**bits_stored - 1`` when given, else the image maximum).
2. Polarity of the displayed image:

   * ``"bone_dark"``: brightness grows with the detected exposure (fluoroscopy / XA /
     RF display, and :mod:`registration.engine.xray_sim` output). Line integral
     ``-log(b / I0)`` with ``I0`` the 99.5th brightness percentile inside the field
     (unattenuated beam); ``b`` is floored at ``I0 * 1e-4``.
   * ``"bone_bright"``: the displayed image already shows attenuation (radiograph
     display). Line integral ``4 * (b - b_air) / (b_max - b_air)`` (percentiles 0.5 and
     99.5 inside the field), an arbitrary but fixed scale.
   * ``"auto"`` (default): MONOCHROME2 -> ``bone_dark`` (C-arm convention),
     MONOCHROME1 -> ``bone_bright`` (CR/DX radiograph convention).

   * ``"detect"``: read from the image's own quantum noise
     (:mod:`registration.engine.display_form`), the header convention when it cannot tell.

   The form (``form``): ``"counts"`` (linear detector counts or a gamma curve of them:
   line integral ``-log(I / I0)``, the formulas above for bone-dark images; for bone-bright
   ones ``I = M - b``, M the full scale) or ``"log"`` (a log display, already
   logarithmic: line integral ``(b_air - b) / c`` bone dark, ``(b - b_air) / c`` bone
   bright, ``c`` the brightness per attenuation unit read from the noise, else the fixed
   scale above); ``"auto"``: read from the noise; None (default): the pairing above
   (bone dark -> counts, bone bright -> log), as before form detection. Linear-count,
   gamma-curved, log-display and MONOCHROME1 copies of one shot so map to the same line
   integrals up to gain (NCC >= 0.95 on simulated shots).

3. Collimated / outside-field pixels (flat regions touching the image border: shutters,
   the dark surround of an image intensifier's circular field, padding) are masked and
   set to 0 in the output; :func:`line_integral_and_mask` also returns the mask.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np


def field_mask(brightness: np.ndarray, *, min_area_fraction: float = 0.002) -> np.ndarray:
    """True inside the exposed field: flat regions (no local variation) touching the image
    border and covering at least ``min_area_fraction`` of it are outside."""
    img = np.asarray(brightness, dtype=np.float32)
    H, W = img.shape
    span = float(np.ptp(img)) if img.size else 0.0
    if span == 0.0:
        return np.ones((H, W), dtype=bool)
    tol = 1e-4 * span  # "flat": varies by no more than this
    kernel = np.ones((3, 3), np.uint8)
    flat = ((cv2.dilate(img, kernel) - cv2.erode(img, kernel)) <= tol).astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(flat, connectivity=4)
    border = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    outside = np.zeros((H, W), dtype=bool)
    for lab in border.tolist():
        if lab != 0 and stats[lab, cv2.CC_STAT_AREA] >= min_area_fraction * H * W:
            outside |= labels == lab
    if outside.any():
        outside = cv2.dilate(outside.astype(np.uint8), kernel).astype(bool)
    return ~(outside | _flat_border_lines(img, tol))


def _flat_border_lines(img: np.ndarray, tol: float) -> np.ndarray:
    """True on the rows and columns at the image border that are flat along their whole
    length (peak-to-peak at most ``tol``), peeled inward: a collimator blade that covers
    only a pixel or two is too thin for the 3x3 flatness test, and its unexposed pixels
    would read as the thickest anatomy in the image."""
    H, W = img.shape
    out = np.zeros((H, W), dtype=bool)
    top, bottom, left, right = 0, H, 0, W
    while top < bottom and left < right:
        if np.ptp(img[top, left:right]) <= tol:
            out[top] = True
            top += 1
        elif np.ptp(img[bottom - 1, left:right]) <= tol:
            out[bottom - 1] = True
            bottom -= 1
        elif np.ptp(img[top:bottom, left]) <= tol:
            out[:, left] = True
            left += 1
        elif np.ptp(img[top:bottom, right - 1]) <= tol:
            out[:, right - 1] = True
            right -= 1
        else:
            break
    return out


def blade_mask(line: np.ndarray, mask: np.ndarray, *, min_fraction: float = 0.6,
               max_depth: float = 0.35) -> np.ndarray:
    """``mask`` without the collimator blades that still see some scatter (not flat, so
    :func:`field_mask` keeps them): on each side, the innermost straight edge parallel to
    it within ``max_depth`` of the image where the line integral ``line`` (H, W) drops
    going inward across at least ``min_fraction`` of the field's extent along it (a blade
    edge crosses the whole field; anatomy edges do not), and everything outside it."""
    out = np.asarray(mask, bool).copy()
    L = np.asarray(line, np.float64)
    inside = L[out]
    if inside.size < 100:
        return out
    lo, hi = np.percentile(inside, [5, 95])
    tau = 0.25 * max(hi - lo, 1e-9)
    for side in range(4):
        Lr, mr = np.rot90(L, side), np.rot90(out, side)  # the side being checked on top
        n = Lr.shape[0]
        depth = int(max_depth * n)
        if depth < 4:
            continue
        # drop across 3 px going inward (blur spreads a blade edge over a few pixels)
        drop = Lr[0:depth - 3] - Lr[3:depth]
        ok = mr[0:depth - 3] & mr[3:depth]
        cols = int((mr.sum(axis=0) > 0).sum())
        frac = ((drop > tau) & ok).sum(axis=1) / max(cols, 1)
        hits = np.flatnonzero(frac >= min_fraction)
        if len(hits):
            edge = int(hits.max()) + 3  # rows before the inner side of the edge
            cut = np.zeros_like(mr)
            cut[:edge] = True
            out &= ~np.rot90(cut, -side)
    return out


def line_integral_and_mask(
    pixels: Any,
    photometric: str = "MONOCHROME2",
    *,
    bits_stored: int | None = None,
    polarity: str = "auto",
    mask: np.ndarray | None = None,
    form: str | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """``(line_integral float32 (H, W), field mask bool (H, W))`` for stored pixels."""
    li, m, _ = line_integral_with_form(pixels, photometric, bits_stored=bits_stored,
                                       polarity=polarity, mask=mask, form=form)
    return li, m


def line_integral_with_form(
    pixels: Any,
    photometric: str = "MONOCHROME2",
    *,
    bits_stored: int | None = None,
    polarity: str = "detect",
    mask: np.ndarray | None = None,
    form: str | None = "auto",
) -> tuple[np.ndarray, np.ndarray, dict]:
    """As :func:`line_integral_and_mask`, plus what was used: ``{"polarity", "form",
    "detected": bool (the noise decided the polarity), "gamma" | "log_scale"}``. Defaults
    read polarity and form from the image (see the module docstring)."""
    x, phot = _checked_pixels(pixels, photometric, polarity, form)
    b = _displayed_brightness(x, phot, bits_stored)
    mask = field_mask(b) if mask is None else _checked_mask(mask, b.shape)
    header = "bone_dark" if phot == "MONOCHROME2" else "bone_bright"
    info: dict = {"detected": False}
    log_scale = None
    form_detected = form == "auto"
    if polarity == "detect" or form == "auto":
        polarity, form, log_scale = _read_transfer(b, mask, bits_stored, header, polarity,
                                                   form, info)
    if polarity in ("auto", "detect"):
        polarity = header
    if form is None:
        form = "counts" if polarity == "bone_dark" else "log"
    line = _line_integral(b, mask, polarity, form, bits_stored, log_scale, info)
    if form_detected:
        # blades that see scatter are not flat: find their straight edges in this image
        blades = blade_mask(np.where(mask, line, 0.0), mask)
        info["blade_pixels"] = int((mask & ~blades).sum())
        mask = blades
    line = np.where(mask, np.maximum(line, 0.0), 0.0).astype(np.float32)
    info.update(polarity=polarity, form=form)
    return line, mask, info


def _checked_pixels(
    pixels: Any, photometric: str, polarity: str, form: str | None
) -> tuple[np.ndarray, str]:
    """``(pixels as float64 (H, W), photometric upper-cased)``; ValueError naming the
    problem for a colour, non-2-D or non-finite image or an unknown option."""
    x = np.asarray(pixels, dtype=np.float64)
    if x.ndim == 3 and x.shape[-1] in (3, 4):
        raise ValueError("X-ray must be a single-channel (grey) image, got colour")
    if x.ndim != 2 or min(x.shape) < 2:
        raise ValueError(f"X-ray must be a 2-D image, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("X-ray pixels contain NaN or infinite values")
    phot = str(photometric).strip().upper()
    if phot not in ("MONOCHROME1", "MONOCHROME2"):
        raise ValueError(
            f"unsupported photometric interpretation {photometric!r} "
            "(expected MONOCHROME1 or MONOCHROME2)"
        )
    if polarity not in ("auto", "detect", "bone_dark", "bone_bright"):
        raise ValueError(
            f"polarity must be auto, detect, bone_dark or bone_bright, got {polarity!r}")
    if form not in (None, "auto", "counts", "log"):
        raise ValueError(f"form must be auto, counts or log, got {form!r}")
    return x, phot


def _displayed_brightness(x: np.ndarray, phot: str, bits_stored: int | None) -> np.ndarray:
    """Displayed brightness ``b >= 0``: stored values for MONOCHROME2, ``maxval - value``
    for MONOCHROME1, shifted up when the storage is signed."""
    if phot == "MONOCHROME1":
        maxval = float(2 ** int(bits_stored) - 1) if bits_stored else float(x.max())
        b = maxval - x
    else:
        b = x
    return b - min(0.0, float(b.min()))  # signed storage: shift to non-negative


def _checked_mask(mask: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """A given field mask as bool, which must have the image's ``shape``."""
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != shape:
        raise ValueError(f"mask shape {mask.shape} does not match image {shape}")
    return mask


def _read_transfer(
    b: np.ndarray,
    mask: np.ndarray,
    bits_stored: int | None,
    header: str,
    polarity: str,
    form: str | None,
    info: dict,
) -> tuple[str, str | None, float | None]:
    """``(polarity, form, log_scale)`` read from the image's noise where ``polarity`` is
    "detect" or ``form`` is "auto" (else as given); records ``detected`` and ``gamma`` in
    ``info``."""
    from registration.engine.display_form import estimate_transfer

    full = float(2 ** int(bits_stored) - 1) if bits_stored else None
    est = estimate_transfer(b, mask, full_scale=full, header_polarity=header,
                            fixed_polarity=None if polarity in ("detect", "auto")
                            else polarity)
    log_scale = None
    if polarity == "detect":
        polarity, info["detected"] = est.polarity, est.confident
    if form == "auto":
        form = "counts" if est.form == "power" else "log"
        if form == "log":
            log_scale = est.log_scale
        else:
            info["gamma"] = round(est.gamma, 3)
    return polarity, form, log_scale


def _line_integral(
    b: np.ndarray,
    mask: np.ndarray,
    polarity: str,
    form: str,
    bits_stored: int | None,
    log_scale: float | None,
    info: dict,
) -> np.ndarray:
    """Unmasked (H, W) line integral of brightness ``b`` for ``polarity`` and ``form``
    (see the module docstring); records ``log_scale`` in ``info`` when the noise gave it."""
    inside = b[mask] if mask.any() else b.ravel()
    lo, hi = (float(v) for v in np.percentile(inside, [0.5, 99.5]))
    if form == "counts":
        if polarity == "bone_bright":  # inverted counts: exposure = full scale - value
            full = float(2 ** int(bits_stored) - 1) if bits_stored else float(b.max())
            b = np.maximum(full - b, 0.0)
            inside = b[mask] if mask.any() else b.ravel()
        i0 = float(np.percentile(inside, 99.5))
        if i0 <= 0:
            raise ValueError("X-ray has no exposed pixels (all zero inside the field)")
        return -np.log(np.maximum(b, i0 * 1e-4) / i0)
    c = log_scale if log_scale else max(hi - lo, 1e-12) / 4.0
    line = (hi - b) / c if polarity == "bone_dark" else (b - lo) / c
    if log_scale:
        info["log_scale"] = round(float(c), 4)
    return line


def to_line_integral(
    pixels: Any,
    photometric: str = "MONOCHROME2",
    *,
    bits_stored: int | None = None,
    polarity: str = "auto",
    mask: np.ndarray | None = None,
) -> np.ndarray:
    """Stored X-ray pixels (any integer or float type) -> float32 (H, W) line integrals,
    bone bright, outside-field pixels 0. See the module docstring for the model."""
    return line_integral_and_mask(
        pixels, photometric, bits_stored=bits_stored, polarity=polarity, mask=mask
    )[0]
