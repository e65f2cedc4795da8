"""Markers of one dewarping-plate frame: sub-pixel centres of holes or beads.

``log`` of the dark-corrected image (vignetting and uneven brightness become an additive,
smooth background), holes bright and beads dark (the polarity follows the marker and, for
MONOCHROME1 or inverted images, the field's own brightness), Laplacian of Gaussian peaks
at the marker size, background-subtracted weighted centroids; markers whose window is not
wholly inside the field, or whose signal or shape differs from the markers around them,
are dropped (cut by the field edge). Pixels ``(u, v)`` of the stored image.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy.spatial import cKDTree

from refusal import Refused

from .detect import dedupe_points
from .plate_field import PlateField, plate_field


class PlateError(Refused):
    """A plate frame cannot be used; the one-line message says why."""


@dataclass
class MarkerDetections:
    xy: np.ndarray  # (N, 2) pixels
    integral: np.ndarray
    contrast: np.ndarray
    circularity: np.ndarray
    radius: np.ndarray
    field: PlateField
    inner: np.ndarray  # (H, W) bool, where a marker counts as wholly inside
    noise: float
    markers_bright: bool  # polarity in the input image
    n_dropped_edge: int


def _centroids(top, us, vs, rwin, ring_in, ring_out, iters=5):
    """Vectorised iterated weighted centroids of bright blobs in ``top`` around integer
    positions (us, vs), with a robust local background plane from a ring."""
    half = int(np.ceil(ring_out)) + 1
    off = np.arange(-half, half + 1)
    oy, ox = np.meshgrid(off, off, indexing="ij")
    patch = top[vs[:, None, None] + oy[None], us[:, None, None] + ox[None]].astype(np.float64)
    ox = ox.astype(np.float64)[None]
    oy = oy.astype(np.float64)[None]
    d2 = ox**2 + oy**2
    ring = ((d2 > ring_in**2) & (d2 <= ring_out**2))[0]
    rx, ry = ox[0][ring], oy[0][ring]
    design = np.column_stack([np.ones_like(rx), rx, ry])
    z = patch[:, ring]  # (N, R)
    pinv = np.linalg.pinv(design)  # (3, R)
    coef = z @ pinv.T  # (N, 3)
    for _ in range(2):
        res = z - coef @ design.T
        mad = 1.4826 * np.median(np.abs(res), axis=1, keepdims=True) + 1e-12
        wts = (np.abs(res) <= 2.5 * mad).astype(np.float64)
        a = np.einsum("nr,ri,rj->nij", wts, design, design)
        bvec = np.einsum("nr,nr,ri->ni", wts, z, design)
        good = np.linalg.det(a) > 1e-9
        coef[good] = np.linalg.solve(a[good], bvec[good][..., None])[..., 0]
    bg = coef[:, 0, None, None] + coef[:, 1, None, None] * ox + coef[:, 2, None, None] * oy
    sig = patch - bg
    cu = np.zeros(len(us))
    cv = np.zeros(len(us))
    for _ in range(iters):
        dd = (ox - cu[:, None, None]) ** 2 + (oy - cv[:, None, None]) ** 2
        inside = dd <= rwin**2
        s_in = np.where(inside, sig, 0.0)
        peak = s_in.max(axis=(1, 2))
        wts = np.clip(s_in - 0.1 * peak[:, None, None], 0, None)
        tot = wts.sum(axis=(1, 2)) + 1e-12
        cu = (wts * ox).sum(axis=(1, 2)) / tot
        cv = (wts * oy).sum(axis=(1, 2)) / tot
        cu = np.clip(cu, -half / 2, half / 2)
        cv = np.clip(cv, -half / 2, half / 2)
    dx, dy = ox - cu[:, None, None], oy - cv[:, None, None]
    cxx = (wts * dx * dx).sum(axis=(1, 2)) / tot
    cyy = (wts * dy * dy).sum(axis=(1, 2)) / tot
    cxy = (wts * dx * dy).sum(axis=(1, 2)) / tot
    tr = cxx + cyy
    disc = np.sqrt(np.clip((cxx - cyy) ** 2 / 4 + cxy**2, 0, None))
    lmax, lmin = tr / 2 + disc, tr / 2 - disc
    circ = np.sqrt(np.clip(lmin, 0, None) / np.clip(lmax, 1e-12, None))
    radius = np.sqrt(np.clip(4 * tr / 2, 0, None))
    integral = np.where(inside, sig, 0.0).sum(axis=(1, 2))
    return us + cu, vs + cv, integral, peak, circ, radius


_BLUR_PX = 1.0  # expected marker blur (pixels) for the centroid window


@dataclass
class _MarkerWindow:
    """Radii (pixels) of a marker, its centroid window and its background ring."""

    r_px: float
    rwin: float
    ring_in: float
    ring_out: float

    @classmethod
    def for_marker(cls, diameter_px: float, pitch_px: float) -> _MarkerWindow:
        r_px = diameter_px / 2
        rwin = r_px + 1.5 * _BLUR_PX + 0.5
        ring_in = rwin + 0.5
        ring_out = max(ring_in + 1.5, min(ring_in + 3.0, pitch_px - rwin))
        return cls(r_px, rwin, ring_in, ring_out)


def detect_markers(
    image: np.ndarray,
    pitch_px: float,
    diameter_px: float,
    markers_bright: bool | None,
    *,
    min_contrast: float = 5.0,
) -> MarkerDetections:
    """Markers of a plate frame. ``markers_bright`` is the polarity in raw intensity
    (holes True, beads False; None: holes); an image whose field is darker than its
    surroundings (MONOCHROME1, inverted) is turned back to raw intensity first."""
    img = _plate_image(image)
    field = plate_field(img, pitch_px)
    if markers_bright is None:
        markers_bright = True
    lg = _log_intensity(img, field, markers_bright)
    win = _MarkerWindow.for_marker(diameter_px, pitch_px)
    inner = _usable_area(field, win, pitch_px)
    lg[~field.mask] = float(np.median(lg[field.mask][::7]))
    us, vs = _log_peaks(lg, inner, win.r_px, pitch_px)
    noise = _noise_between(lg, inner, us, vs, win.rwin)
    cu, cv_, integ, peak, circ, rad = _centroids(lg, us, vs, win.rwin, win.ring_in, win.ring_out)
    ok = _gate(cu, cv_, integ, peak / noise, circ, rad, inner, win.r_px, min_contrast)
    # duplicates (two peaks on one marker)
    xy = np.column_stack([cu, cv_])[ok]
    integ, peak, circ, rad = integ[ok], peak[ok], circ[ok], rad[ok]
    kd = dedupe_points(xy, integ, 0.4 * pitch_px)
    xy, integ, peak, circ, rad = xy[kd], integ[kd], peak[kd], circ[kd], rad[kd]
    good = _not_cut(xy, integ)
    n_drop = int((~good).sum())
    xy, integ, peak, circ, rad = xy[good], integ[good], peak[good], circ[good], rad[good]
    in_image = markers_bright if field.field_bright else not markers_bright
    return MarkerDetections(
        xy, integ, peak / noise, circ, rad, field, inner, noise, bool(in_image), n_drop
    )


def _plate_image(image: np.ndarray) -> np.ndarray:
    """The frame as float64, refused when not 2-D, too small, non-finite or blank."""
    img = np.asarray(image, dtype=np.float64)
    if img.ndim != 2:
        raise PlateError(f"image must be 2-D grey, got shape {img.shape}")
    h, w = img.shape
    if min(h, w) < 64:
        raise PlateError(f"image is too small ({w}x{h} pixels)")
    if not np.all(np.isfinite(img)):
        raise PlateError("image contains NaN or infinite values")
    sub = img[::3, ::3]
    if np.percentile(sub, 99.9) - np.percentile(sub, 0.1) <= 1e-9 * (abs(img.max()) + 1):
        raise PlateError("image is blank (no contrast)")
    return img


def _log_intensity(img: np.ndarray, field: PlateField, markers_bright: bool) -> np.ndarray:
    """``log`` of the dark-corrected raw intensity (float32), markers made bright."""
    # intensity domain: the field brighter than the outside (raw); otherwise inverted
    raw = img - field.dark if field.field_bright else field.dark - img
    if np.isfinite(field.radius):
        level = float(np.median(raw[field.mask][::5]))
    else:
        level = float(np.median(raw[::5, ::5]))
    if level <= 0:
        raw = raw - raw.min()
        level = float(np.median(raw[::5, ::5])) + 1e-6
    floor = max(level * 0.02, 1e-6)
    lg = np.log(np.clip(raw, floor, None)).astype(np.float32)
    if not markers_bright:
        lg = -lg
    return lg


def _usable_area(field: PlateField, win: _MarkerWindow, pitch_px: float) -> np.ndarray:
    """Where a marker counts as wholly inside the field (its window too), (H, W) bool."""
    margin = int(np.ceil(win.ring_out + 2))
    inner = field.mask.copy()
    if np.isfinite(field.radius):
        er = int(np.ceil(win.r_px + 2 * _BLUR_PX + max(0.35 * pitch_px, 6.0)))
        inner = cv2.erode(
            field.mask.astype(np.uint8),
            cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * er + 1,) * 2),
        ).astype(bool)
    inner[:margin] = False
    inner[-margin:] = False
    inner[:, :margin] = False
    inner[:, -margin:] = False
    if inner.sum() < 25 * pitch_px**2:
        raise PlateError("the exposed field of view is too small to hold the plate lattice")
    return inner


def _log_peaks(
    lg: np.ndarray, inner: np.ndarray, r_px: float, pitch_px: float
) -> tuple[np.ndarray, np.ndarray]:
    """Integer (u, v) of Laplacian-of-Gaussian peaks at the marker size, weak ones dropped."""
    sigma = max(0.8, r_px / np.sqrt(2))
    g = cv2.GaussianBlur(lg, (0, 0), sigma)
    resp = -(sigma**2) * cv2.Laplacian(g, cv2.CV_32F)
    ksz = int(max(3, 2 * int(0.35 * pitch_px) + 1))
    peaks = (resp >= cv2.dilate(resp, np.ones((ksz, ksz), np.uint8))) & inner & (resp > 0)
    vs, us = np.nonzero(peaks)
    if len(us) < 9:
        raise PlateError(f"only {len(us)} marker-like blobs found: not an image of this plate")
    rv = resp[vs, us]
    thr = 0.3 * float(np.percentile(rv, 75))
    keep = rv > thr
    return us[keep], vs[keep]


def _noise_between(
    lg: np.ndarray, inner: np.ndarray, us: np.ndarray, vs: np.ndarray, rwin: float
) -> float:
    """Noise of the plate between markers (pixels away from every candidate)."""
    hp = lg - cv2.GaussianBlur(lg, (0, 0), 1.0)
    near_cand = np.zeros(lg.shape, np.uint8)
    near_cand[vs, us] = 1
    dsz = 2 * int(np.ceil(rwin + 1)) + 1
    near_cand = cv2.dilate(near_cand, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (dsz, dsz)))
    between = inner & (near_cand == 0)
    pool = hp[between] if between.sum() > 500 else hp[inner]
    return float(1.4826 * np.median(np.abs(pool[::3]))) + 1e-9


def _gate(cu, cv_, integ, snr, circ, rad, inner, r_px: float, min_contrast: float) -> np.ndarray:
    """Centroids that pass contrast, shape and size gates, lie in ``inner`` and carry a
    signal near the median marker's."""
    h, w = inner.shape
    ok = (snr > min_contrast) & (circ > 0.6)
    ok &= (rad > 0.4 * r_px) & (rad < 2.0 * r_px + 2.0)
    iu, iv = np.round(cu).astype(int), np.round(cv_).astype(int)
    inb = (iu >= 0) & (iu < w) & (iv >= 0) & (iv < h)
    ok &= inb
    ok[inb] &= inner[iv[inb], iu[inb]]
    if ok.sum() >= 9:
        med = np.median(integ[ok])
        ok &= (integ > 0.5 * med) & (integ < 2.0 * med)
    return ok


def _not_cut(xy: np.ndarray, integ: np.ndarray) -> np.ndarray:
    """Edge check: a marker whose signal is well below that of its neighbours is cut."""
    if len(xy) < 20:
        return np.ones(len(xy), bool)
    tree = cKDTree(xy)
    _, nb = tree.query(xy, k=min(9, len(xy)))
    loc = np.median(integ[nb[:, 1:]], axis=1)
    return (integ > 0.7 * loc) & (integ < 1.4 * loc)
