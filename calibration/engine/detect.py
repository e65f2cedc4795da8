"""Sub-pixel bead detection in phantom X-ray images.

Pipeline: field-of-view mask -> line-integral image (beads bright, ``-log I`` for raw
detector images) -> white top-hat background flattening -> multi-scale normalised LoG
blob candidates -> intensity-weighted centroid (iterated, background-subtracted, never
rounded) -> gates on size, circularity and contrast. Positions are pixels ``(u, v)``
(column, row; centre of the top-left pixel is (0, 0)).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from refusal import Refused


class DetectionError(Refused):
    """The image cannot be used for bead detection; the message says why."""


@dataclass
class Detections:
    """Accepted blobs (arrays of length N) plus the field of view and polarity used."""

    xy: np.ndarray  # (N, 2) float pixels
    radius: np.ndarray  # (N,) px, equivalent sphere radius from second moments
    integral: np.ndarray  # (N,) integrated top-hat signal (line-integral units * px^2)
    contrast: np.ndarray  # (N,) peak signal / noise
    circularity: np.ndarray  # (N,) sqrt(minor/major second moment)
    fov_centre: tuple[float, float]
    fov_radius: float  # px; inf when no circular field was found
    fov_mask: np.ndarray  # (H, W) bool, usable area (eroded)
    beads_bright: bool  # polarity in the input image
    noise: float

    def __len__(self) -> int:
        return len(self.xy)


def _as_float(image: np.ndarray) -> np.ndarray:
    img = np.asarray(image)
    if img.ndim == 3:
        img = img[..., :3].mean(axis=2)
    if img.ndim != 2:
        raise DetectionError(f"image must be 2-D, got shape {img.shape}")
    if img.shape[0] < 64 or img.shape[1] < 64:
        raise DetectionError(f"image is too small ({img.shape[1]}x{img.shape[0]} pixels)")
    img = img.astype(np.float64)
    if not np.all(np.isfinite(img)):
        raise DetectionError("image contains NaN or infinite values")
    return img


def guess_polarity(image: np.ndarray) -> bool:
    """True if beads are probably bright (line-integral image), False for raw detector images.

    A raw image-intensifier image has a bright circular field and dark corners.
    Otherwise, compare the strength of small bright and small dark structures.
    """
    img = _as_float(image)
    h, w = img.shape
    c = img[h // 4 : 3 * h // 4, w // 4 : 3 * w // 4]
    k = max(4, min(h, w) // 20)
    corners = np.concatenate(
        [img[:k, :k].ravel(), img[:k, -k:].ravel(), img[-k:, :k].ravel(), img[-k:, -k:].ravel()]
    )
    sub = img[::3, ::3]
    spread = np.percentile(sub, 99) - np.percentile(sub, 1) + 1e-12
    diff = (np.median(c) - np.median(corners)) / spread
    if diff > 0.3:
        return False
    if diff < -0.3:
        return True
    small = cv2.resize(img.astype(np.float32), (w // 2, h // 2), interpolation=cv2.INTER_AREA)
    ker = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (15, 15))
    white = cv2.morphologyEx(small, cv2.MORPH_TOPHAT, ker)
    black = cv2.morphologyEx(small, cv2.MORPH_BLACKHAT, ker)
    return bool(np.percentile(white, 99.7) >= np.percentile(black, 99.7))


def _field_of_view(img: np.ndarray, beads_bright: bool) -> tuple[np.ndarray, tuple, float]:
    """Mask of the exposed field: the largest region on the exposed side of an Otsu split."""
    h, w = img.shape
    sub = img[::3, ::3]
    if not beads_bright and np.percentile(sub, 1) >= 0:
        img = np.log(np.clip(img, np.percentile(sub, 99) * 1e-3 + 1e-12, None))
    lo, hi = np.percentile(img[::3, ::3], [0.5, 99.5])
    if hi - lo <= 0:
        return np.ones((h, w), bool), ((w - 1) / 2, (h - 1) / 2), np.inf
    u8 = np.clip((img - lo) / (hi - lo) * 255, 0, 255).astype(np.uint8)
    u8 = cv2.GaussianBlur(u8, (0, 0), 3)
    _, th = cv2.threshold(u8, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    exposed = th > 0 if not beads_bright else th == 0
    n, lab, stats, cents = cv2.connectedComponentsWithStats(exposed.astype(np.uint8), 8)
    if n <= 1:
        return np.ones((h, w), bool), ((w - 1) / 2, (h - 1) / 2), np.inf
    big = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    area = stats[big, cv2.CC_STAT_AREA]
    # dark corners on all four sides and a compact blob -> circular field
    corner_dark = not (exposed[0, 0] or exposed[0, -1] or exposed[-1, 0] or exposed[-1, -1])
    if area > 0.97 * h * w or not corner_dark or area < 0.15 * h * w:
        return np.ones((h, w), bool), ((w - 1) / 2, (h - 1) / 2), np.inf
    mask = lab == big
    # anatomy can darken parts of the field: fill it as the convex hull of the component
    contours, _ = cv2.findContours(
        mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE
    )
    hull = cv2.convexHull(np.concatenate(contours, axis=0))
    filled = np.zeros((h, w), np.uint8)
    cv2.fillConvexPoly(filled, hull, 1)
    mask = filled.astype(bool)
    mom = cv2.moments(filled, binaryImage=True)
    cents[big] = (mom["m10"] / mom["m00"], mom["m01"] / mom["m00"])
    cx, cy = cents[big]
    radius = float(np.sqrt(mask.sum() / np.pi))
    return mask, (float(cx), float(cy)), radius


def line_integral_image(img: np.ndarray, beads_bright: bool, mask: np.ndarray) -> np.ndarray:
    """Beads-bright, additive image: ``-log`` of a raw image, the image itself otherwise."""
    if beads_bright:
        out = img.copy()
    else:
        ref = np.median(img[mask][::5]) if np.any(mask) else np.median(img)
        floor = max(abs(ref) * 1e-3, 1e-6)
        if np.min(img[mask]) > 0 or ref > 0:
            out = -np.log(np.clip(img, floor, None) / max(ref, floor))
        else:
            out = -img
    fill = np.median(out[mask][::5]) if np.any(mask) else 0.0
    out[~mask] = fill
    return out


def detect_beads(
    image: np.ndarray,
    radius_range_px: tuple[float, float],
    *,
    beads_bright: bool | None = None,
    min_contrast: float = 6.0,
    min_circularity: float = 0.6,
    max_candidates: int = 4000,
) -> Detections:
    """Detect round blobs whose radius is within ``radius_range_px`` (pixels).

    ``beads_bright`` None guesses the polarity. Raises :class:`DetectionError` for a
    blank image. Returns every blob that passes the gates (beads, and possibly anatomy
    or implant blobs that correspondence must reject).
    """
    img = _as_float(image)
    sub = img[::3, ::3]
    spread = np.percentile(sub, 99.9) - np.percentile(sub, 0.1)
    if spread <= 1e-9 * (abs(np.max(img)) + 1.0) or np.std(img) == 0:
        raise DetectionError("image is blank (no contrast)")
    if beads_bright is None:
        beads_bright = guess_polarity(img)
    rmin, rmax = float(radius_range_px[0]), float(radius_range_px[1])
    rmin = max(rmin, 0.8)
    mask, fov_c, fov_r = _field_of_view(img, beads_bright)
    line = line_integral_image(img, beads_bright, mask).astype(np.float32)
    top = _flatten_background(line, rmax)
    inner = _usable_area(mask, np.isfinite(fov_r), rmax)
    noise = _noise_level(top, inner)
    us, vs, sigma = _log_candidates(top, inner, noise, rmin, rmax, min_contrast, max_candidates)
    xy, rad, integ, con, circ = [], [], [], [], []
    for u0, v0, s in zip(us, vs, sigma, strict=True):
        res = _centroid(top, float(u0), float(v0), max(1.6 * s * 1.414 + 2.0, rmin + 2.0), noise)
        if res is None:
            continue
        (cu, cv), r_eq, total, peak, c = res
        if not _passes_gates(cu, cv, r_eq, peak / noise, c, inner, rmin, rmax,
                             min_contrast, min_circularity):  # fmt: skip
            continue
        xy.append((cu, cv))
        rad.append(r_eq)
        integ.append(total)
        con.append(peak / noise)
        circ.append(c)
    xy_a = np.array(xy, dtype=np.float64).reshape(-1, 2)
    integ_a = np.array(integ)
    keep = dedupe_points(xy_a, integ_a, 0.8 * rmin + 1.0)
    return Detections(
        xy_a[keep],
        np.array(rad)[keep],
        integ_a[keep],
        np.array(con)[keep],
        np.array(circ)[keep],
        fov_c,
        fov_r,
        inner,
        bool(beads_bright),
        noise,
    )


def _flatten_background(line: np.ndarray, rmax: float) -> np.ndarray:
    """White top-hat with a disc wider than the largest bead (the background estimated on
    a reduced image when the disc is large: it is smooth)."""
    h, w = line.shape
    ksz = int(2 * np.ceil(2.2 * rmax) + 1)
    ker = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (ksz, ksz))
    factor = max(1, int(ksz // 15))
    if factor > 1:
        small = cv2.resize(line, (w // factor, h // factor), interpolation=cv2.INTER_AREA)
        ks = int(2 * (ksz // (2 * factor)) + 1)
        ker = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (ks, ks))
        opened = cv2.morphologyEx(small, cv2.MORPH_OPEN, ker)
        opened = cv2.blur(opened, (max(3, ks // 3), max(3, ks // 3)))
        opened = cv2.resize(opened, (w, h), interpolation=cv2.INTER_LINEAR)
    else:
        opened = cv2.morphologyEx(line, cv2.MORPH_OPEN, ker)
        opened = cv2.blur(opened, (max(3, ksz // 3), max(3, ksz // 3)))
    return line - opened


def _usable_area(mask: np.ndarray, round_field: bool, rmax: float) -> np.ndarray:
    """Where a bead and its centroid window fit: the field eroded (a round field) and a
    margin from the image border; refused when too small."""
    inner = mask.copy()
    margin = int(np.ceil(rmax * 1.5 + 3))
    if round_field:
        inner = cv2.erode(
            mask.astype(np.uint8),
            cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * margin + 1,) * 2),
        ).astype(bool)
    inner[:margin, :] = False
    inner[-margin:, :] = False
    inner[:, :margin] = False
    inner[:, -margin:] = False
    if inner.sum() < 100:
        raise DetectionError("the exposed field of view is too small to hold a phantom")
    return inner


def _noise_level(top: np.ndarray, inner: np.ndarray) -> float:
    """Robust noise of the flattened image (high-pass MAD, scaled), never zero."""
    noise_img = top - cv2.GaussianBlur(top, (0, 0), 1.0)
    sample = noise_img[inner][::7]
    noise = float(1.4826 * np.median(np.abs(sample - np.median(sample))) * 2.3)
    return max(noise, 1e-6 * (float(np.percentile(top[inner][::7], 99.9)) + 1e-12), 1e-12)


def _log_candidates(top, inner, noise, rmin, rmax, min_contrast, max_candidates):
    """Local maxima of a multi-scale normalised LoG: integer (u, v) and the scale (sigma,
    pixels) of each, strongest ``max_candidates`` kept."""
    h, w = top.shape
    sigmas = np.geomspace(rmin / 1.6, rmax / 1.2, 4)
    resp = np.full((h, w), -np.inf, np.float32)
    scale_idx = np.zeros((h, w), np.int8)
    for k, s in enumerate(sigmas):
        g = cv2.GaussianBlur(top, (0, 0), float(s))
        r = -(s**2) * cv2.Laplacian(g, cv2.CV_32F)
        better = r > resp
        resp[better] = r[better]
        scale_idx[better] = k
    peak_ker = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (int(2 * max(1, rmin) + 1),) * 2)
    local_max = resp >= cv2.dilate(resp, peak_ker)
    cand = local_max & inner & (resp > 0.5 * min_contrast * noise)
    vs, us = np.nonzero(cand)
    if len(us) > max_candidates:
        order = np.argsort(resp[vs, us])[::-1][:max_candidates]
        vs, us = vs[order], us[order]
    return us, vs, sigmas[scale_idx[vs, us]]


def _passes_gates(cu, cv, r_eq, snr, circ, inner, rmin, rmax, min_contrast, min_circularity):
    """Size, circularity and contrast gates; the centroid inside the usable area."""
    h, w = inner.shape
    if not (0.5 * rmin <= r_eq <= 1.5 * rmax + 1.0):
        return False
    if circ < min_circularity or snr < min_contrast:
        return False
    iu, iv = int(round(cu)), int(round(cv))
    return (0 <= iu < w and 0 <= iv < h) and bool(inner[iv, iu])


def _centroid(top: np.ndarray, u: float, v: float, rwin: float, noise: float, iters: int = 4):
    """Iterated, background-subtracted intensity-weighted centroid inside a disc."""
    h, w = top.shape
    half = int(np.ceil(rwin + 3))
    x0, y0 = int(round(u)) - 2 * half, int(round(v)) - 2 * half
    size = 4 * half + 1
    if x0 < 0 or y0 < 0 or x0 + size > w or y0 + size > h:
        return None
    big = top[y0 : y0 + size, x0 : x0 + size].astype(np.float64)
    yy, xx = np.mgrid[y0 : y0 + size, x0 : x0 + size].astype(np.float64)
    d2 = (xx - u) ** 2 + (yy - v) ** 2
    ring = (d2 > (rwin + 0.5) ** 2) & (d2 <= (rwin + 3) ** 2)
    # local background: a plane through the ring (robust to edges of anatomy)
    if np.count_nonzero(ring) >= 12:
        rx, ry, rz = xx[ring] - u, yy[ring] - v, big[ring]
        design = np.column_stack([np.ones_like(rx), rx, ry])
        coef, *_ = np.linalg.lstsq(design, rz, rcond=None)
        resid = rz - design @ coef
        keep = np.abs(resid) <= 2.5 * 1.4826 * np.median(np.abs(resid)) + 1e-12
        if keep.sum() >= 8:
            coef, *_ = np.linalg.lstsq(design[keep], rz[keep], rcond=None)
        bg = coef[0] + coef[1] * (xx - u) + coef[2] * (yy - v)
    else:
        bg = 0.0
    sig = big - bg
    wts = None
    tot = peak = 0.0
    inside = None
    for _ in range(iters):
        if abs(u - (x0 + 2 * half)) > half or abs(v - (y0 + 2 * half)) > half:
            return None
        d2 = (xx - u) ** 2 + (yy - v) ** 2
        inside = d2 <= rwin**2
        wts = np.where(inside, sig, 0.0)
        peak = float(wts.max())
        wts = np.clip(wts - 0.1 * peak, 0, None)
        tot = float(wts.sum())
        if tot <= 0 or peak <= 0:
            return None
        nu = float((wts * xx).sum() / tot)
        nv = float((wts * yy).sum() / tot)
        moved = abs(nu - u) + abs(nv - v)
        u, v = nu, nv
        if moved < 1e-3:
            break
    dx, dy = xx - u, yy - v
    cxx = (wts * dx * dx).sum() / tot
    cyy = (wts * dy * dy).sum() / tot
    cxy = (wts * dx * dy).sum() / tot
    ev = np.linalg.eigvalsh(np.array([[cxx, cxy], [cxy, cyy]]))
    if ev[0] <= 0:
        return None
    r_eq = float(np.sqrt(5.0 * ev.mean()))
    signal = float(np.where(inside, sig, 0.0).sum())
    return (u, v), r_eq, signal, peak, float(np.sqrt(ev[0] / ev[1]))


def dedupe_points(xy: np.ndarray, score: np.ndarray, min_dist: float) -> np.ndarray:
    """Indices (sorted) of points kept when, strongest ``score`` first, every point within
    ``min_dist`` pixels of a kept one is dropped."""
    if len(xy) == 0:
        return np.zeros(0, dtype=int)
    from scipy.spatial import cKDTree

    order = np.argsort(score)[::-1]
    tree = cKDTree(xy)
    taken = np.zeros(len(xy), bool)
    keep = []
    for i in order:
        if taken[i]:
            continue
        keep.append(i)
        for j in tree.query_ball_point(xy[i], min_dist):
            taken[j] = True
    return np.array(sorted(keep), dtype=int)
