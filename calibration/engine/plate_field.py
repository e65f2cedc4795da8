"""The exposed field of a dewarping-plate frame (round or octagonal, soft edge).

Found on a smoothed copy in which the markers average out: an Otsu split, then the edge
as the steepest fall of brightness along rays from the field's centre. Pixels ``(u, v)``
of the stored image; the dark level outside the field is reported for subtraction.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass
class PlateField:
    mask: np.ndarray  # (H, W) bool, exposed field
    centre: tuple[float, float]
    radius: float  # px (equivalent circle); inf when the field fills the image
    dark: float  # stored value outside the field (0 when there is no outside)
    field_bright: bool  # the exposed field is brighter than the outside


def plate_field(img: np.ndarray, pitch_px: float) -> PlateField:
    """The exposed field of a plate frame (markers averaged out by smoothing)."""
    h, w = img.shape
    f = max(1, int(min(h, w) // 256))
    small = cv2.resize(img.astype(np.float32), (w // f, h // f), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), max(1.0, 0.8 * pitch_px / f))
    lo, hi = np.percentile(small, [0.5, 99.5])
    full = PlateField(np.ones((h, w), bool), ((w - 1) / 2, (h - 1) / 2), np.inf, 0.0, True)
    if hi - lo <= 0:
        return full
    u8 = np.clip((small - lo) / (hi - lo) * 255, 0, 255).astype(np.uint8)
    _, th = cv2.threshold(u8, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    sh, sw = th.shape
    centre_class = th[sh // 2, sw // 2] > 0
    cls = (th > 0) == centre_class
    n, lab, stats, _ = cv2.connectedComponentsWithStats(cls.astype(np.uint8), 8)
    k = lab[sh // 2, sw // 2]
    if k == 0:  # pragma: no cover - the centre pixel is in its own class
        return full
    area = stats[k, cv2.CC_STAT_AREA]
    if area > 0.97 * sh * sw:
        return full
    outside_small = lab != k
    # the field must be the clearly different side: a darker or brighter image border
    fld = float(np.median(small[lab == k]))
    out = float(np.median(small[outside_small]))
    if abs(fld - out) < 0.15 * (hi - lo) or area < 0.15 * sh * sw:
        return full
    contours, _ = cv2.findContours(
        (lab == k).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE
    )
    hull = cv2.convexHull(np.concatenate(contours, axis=0)).astype(np.float64)
    hull = _refine_edge(small, hull, fld > out)
    hull = (hull + 0.5) * f - 0.5
    mask = np.zeros((h, w), np.uint8)
    cv2.fillPoly(mask, [np.round(hull).astype(np.int32).reshape(-1, 1, 2)], 1)
    mask = mask.astype(bool)
    mom = cv2.moments(mask.astype(np.uint8), binaryImage=True)
    centre = (mom["m10"] / mom["m00"], mom["m01"] / mom["m00"])
    radius = float(np.sqrt(mask.sum() / np.pi))
    # dark level: well outside the field (away from the soft edge)
    far = ~cv2.dilate(mask.astype(np.uint8), np.ones((15, 15), np.uint8)).astype(bool)
    dark = float(np.median(img[far][::7])) if far.sum() > 100 else float(np.percentile(img, 1))
    return PlateField(mask, (float(centre[0]), float(centre[1])), radius, dark, fld > out)


def _refine_edge(small: np.ndarray, hull: np.ndarray, bright: bool, n_rays: int = 360):
    """The field edge as the steepest fall of brightness along rays from the field's
    centre (an Otsu split sits inside the field when vignetting is strong); returns the
    edge polygon (n_rays, 2) in ``small``'s pixels."""
    pts = hull.reshape(-1, 2)
    mask = np.zeros(small.shape, np.uint8)
    cv2.fillConvexPoly(mask, np.round(pts).astype(np.int32), 1)
    mom = cv2.moments(mask, binaryImage=True)
    c = np.array([mom["m10"] / mom["m00"], mom["m01"] / mom["m00"]])
    r0 = float(np.sqrt(mask.sum() / np.pi))
    r_max = 1.4 * r0
    n_r = int(np.ceil(r_max * 2))
    polar = cv2.warpPolar(
        small.astype(np.float32), (n_r, n_rays), (float(c[0]), float(c[1])), r_max,
        cv2.INTER_LINEAR | cv2.WARP_POLAR_LINEAR | cv2.WARP_FILL_OUTLIERS,
    )  # fmt: skip
    polar = np.nan_to_num(polar.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    if not bright:
        polar = -polar
    radii = np.arange(n_r) * r_max / n_r
    grad = np.gradient(polar, axis=1)
    band = (radii > 0.75 * r0) & (radii < 1.3 * r0)
    ang = np.arange(n_rays) * 2 * np.pi / n_rays
    hh, ww = small.shape
    ex = c[0] + np.cos(ang)[:, None] * radii[None]
    ey = c[1] + np.sin(ang)[:, None] * radii[None]
    valid = (ex >= 1) & (ex <= ww - 2) & (ey >= 1) & (ey <= hh - 2) & band[None]
    g = np.where(valid, grad, np.inf)
    rows = np.arange(n_rays)
    k = np.argmin(g, axis=1)
    steep = -g[rows, k]
    edge_r = radii[k]
    # rays without a clear fall (the field runs out of the image): the hull's radius
    ok = np.isfinite(steep) & (steep > 0.3 * np.median(steep[np.isfinite(steep)]))
    edge_r = np.where(ok, edge_r, _ray_radius(pts, c, ang))
    # robust smoothing along the edge (a marker or a defect must not dent it)
    pad = np.concatenate([edge_r[-7:], edge_r, edge_r[:7]])
    med = np.array([np.median(pad[i : i + 15]) for i in range(n_rays)])
    edge_r = np.where(np.abs(edge_r - med) > 2.0, med, edge_r)
    return np.column_stack([c[0] + edge_r * np.cos(ang), c[1] + edge_r * np.sin(ang)])


def _ray_radius(poly: np.ndarray, c: np.ndarray, ang: np.ndarray) -> np.ndarray:
    """Distance from ``c`` to a convex polygon's boundary along each direction."""
    out = np.full(len(ang), np.inf)
    p0 = poly - c
    e = np.roll(p0, -1, axis=0) - p0
    d = np.column_stack([np.cos(ang), np.sin(ang)])
    for k in range(len(p0)):
        den = d[:, 0] * e[k, 1] - d[:, 1] * e[k, 0]
        with np.errstate(divide="ignore", invalid="ignore"):
            t = (p0[k, 0] * e[k, 1] - p0[k, 1] * e[k, 0]) / den
            s = (p0[k, 0] * d[:, 1] - p0[k, 1] * d[:, 0]) / den
        ok = (np.abs(den) > 1e-12) & (t > 0) & (s >= -1e-9) & (s <= 1 + 1e-9)
        out[ok] = np.minimum(out[ok], t[ok])
    fin = np.isfinite(out)
    out[~fin] = np.median(out[fin]) if fin.any() else 0.0
    return out
