"""Dewarping grid plates (distortion only): markers on a regular lattice at the detector.

One raw frame of a plate (``phantom.json`` with a ``grid`` object, CONVENTIONS.md) gives
the distortion polynomial alone:

1. field of view: the exposed field (round or octagonal, soft edge) from a smoothed copy
   in which the markers average out; its dark level is subtracted;
2. markers: ``log`` of the dark-corrected image (vignetting and uneven brightness become an
   additive, smooth background), holes bright and beads dark (the polarity follows the
   marker and, for MONOCHROME1 or inverted images, the field's own brightness), Laplacian of
   Gaussian peaks at the marker size, background-subtracted weighted centroids; markers
   whose window is not wholly inside the field, or whose signal or shape differs from the
   markers around them, are dropped (cut by the field edge);
3. lattice: pitch and direction from the central markers, integer lattice coordinates by
   region growing outwards (:mod:`.lattice`), a consistency check of every index;
4. the ideal lattice (pitch ``pitch_mm`` / pixel spacing, its rotation and position fitted
   to the central markers where distortion is smallest) and the polynomial from detected to
   ideal pixels, degree 3..5 by leave-one-out (:mod:`.polynomial`);
5. the profile: ``"source": "nominal"``, ``source_mm = (0, 0, -SDD)``, ``K`` with the
   principal point at the image centre.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass

import cv2
import numpy as np

from refusal import Refused

from .lattice import LatticeError, check_indexing, index_lattice
from .phantom import Phantom
from .polynomial import fit_inverse, fit_poly_select_order
from .source import intrinsics_from_source

DEFAULT_SDD_MM = 1000.0
MIN_MARKERS = 40
CENTRAL_FRACTION = 0.8


class PlateError(Refused):
    """A plate frame cannot be used; the one-line message says why."""


@dataclass
class PlateField:
    mask: np.ndarray  # (H, W) bool, exposed field
    centre: tuple[float, float]
    radius: float  # px (equivalent circle); inf when the field fills the image
    dark: float  # stored value outside the field (0 when there is no outside)
    field_bright: bool  # the exposed field is brighter than the outside


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
    field = plate_field(img, pitch_px)
    if markers_bright is None:
        markers_bright = True
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
    r_px = diameter_px / 2
    blur = 1.0
    rwin = r_px + 1.5 * blur + 0.5
    ring_in = rwin + 0.5
    ring_out = max(ring_in + 1.5, min(ring_in + 3.0, pitch_px - rwin))
    # usable area: markers wholly inside the field, their window too
    margin = int(np.ceil(ring_out + 2))
    inner = field.mask.copy()
    if np.isfinite(field.radius):
        er = int(np.ceil(r_px + 2 * blur + max(0.35 * pitch_px, 6.0)))
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
    lg[~field.mask] = float(np.median(lg[field.mask][::7]))
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
    us, vs = us[keep], vs[keep]
    # noise from the plate between markers (pixels away from every candidate)
    hp = lg - cv2.GaussianBlur(lg, (0, 0), 1.0)
    near_cand = np.zeros(lg.shape, np.uint8)
    near_cand[vs, us] = 1
    dsz = 2 * int(np.ceil(rwin + 1)) + 1
    near_cand = cv2.dilate(near_cand, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (dsz, dsz)))
    between = inner & (near_cand == 0)
    pool = hp[between] if between.sum() > 500 else hp[inner]
    noise = float(1.4826 * np.median(np.abs(pool[::3]))) + 1e-9
    cu, cv_, integ, peak, circ, rad = _centroids(lg, us, vs, rwin, ring_in, ring_out)
    ok = (peak / noise > min_contrast) & (circ > 0.6)
    ok &= (rad > 0.4 * r_px) & (rad < 2.0 * r_px + 2.0)
    iu, iv = np.round(cu).astype(int), np.round(cv_).astype(int)
    inb = (iu >= 0) & (iu < w) & (iv >= 0) & (iv < h)
    ok &= inb
    ok[inb] &= inner[iv[inb], iu[inb]]
    if ok.sum() >= 9:
        med = np.median(integ[ok])
        ok &= (integ > 0.5 * med) & (integ < 2.0 * med)
    # duplicates (two peaks on one marker)
    xy = np.column_stack([cu, cv_])[ok]
    integ, peak, circ, rad = integ[ok], peak[ok], circ[ok], rad[ok]
    from .detect import _dedupe

    kd = _dedupe(xy, integ, 0.4 * pitch_px)
    xy, integ, peak, circ, rad = xy[kd], integ[kd], peak[kd], circ[kd], rad[kd]
    # edge check: a marker whose signal is well below that of its neighbours is cut
    n_drop = 0
    if len(xy) >= 20:
        from scipy.spatial import cKDTree

        tree = cKDTree(xy)
        _, nb = tree.query(xy, k=min(9, len(xy)))
        loc = np.median(integ[nb[:, 1:]], axis=1)
        good = (integ > 0.7 * loc) & (integ < 1.4 * loc)
        n_drop = int((~good).sum())
        xy, integ, peak, circ, rad = xy[good], integ[good], peak[good], circ[good], rad[good]
    in_image = markers_bright if field.field_bright else not markers_bright
    return MarkerDetections(
        xy, integ, peak / noise, circ, rad, field, inner, noise, bool(in_image), n_drop
    )


@dataclass
class PlateLattice:
    detections: MarkerDetections
    xy: np.ndarray  # (M, 2) indexed marker pixels
    ij: np.ndarray  # (M, 2) lattice coordinates
    pitch_px_observed: float  # near the field centre, isotropic pixels
    theta: float


def find_plate_lattice(
    image: np.ndarray,
    grid,
    spacing: tuple[float, float],
    *,
    markers_bright: bool | None = None,
) -> PlateLattice:
    """Detect and index the markers of one plate frame (pixels of the stored image)."""
    sx, sy = float(spacing[0]), float(spacing[1])
    s_mean = 0.5 * (sx + sy)
    pitch_px = grid.pitch_mm / s_mean
    d_px = grid.diameter_mm / s_mean
    if markers_bright is None:
        markers_bright = grid.marker == "hole"
    det = detect_markers(image, pitch_px, d_px, markers_bright)
    if len(det.xy) < MIN_MARKERS:
        raise PlateError(
            f"only {len(det.xy)} plate markers found; at least {MIN_MARKERS} are needed "
            "(wrong plate, wrong pixel spacing, or markers not visible)"
        )
    # isotropic coordinates (mm / mean spacing) so the lattice keeps its shape
    iso = det.xy * np.array([sx, sy]) / s_mean
    c = np.array(det.field.centre) * np.array([sx, sy]) / s_mean
    try:
        lat = index_lattice(iso, c, pitch_px, grid.lattice)
    except LatticeError as exc:
        raise PlateError(str(exc)) from None
    ratio = lat.pitch / pitch_px
    if not 0.8 <= ratio <= 1.25:
        raise PlateError(
            f"marker spacing in the image is {lat.pitch * s_mean:.2f} mm but the plate has "
            f"{grid.pitch_mm:.2f} mm: wrong plate or wrong pixel spacing"
        )
    xy = det.xy[lat.point_index]
    ij = lat.ij
    good = check_indexing(iso[lat.point_index], ij, pitch=lat.pitch)
    xy, ij = xy[good], ij[good]
    if len(xy) < MIN_MARKERS:
        raise PlateError(
            f"only {len(xy)} plate markers could be placed on the lattice; at least "
            f"{MIN_MARKERS} are needed"
        )
    return PlateLattice(det, xy, ij, lat.pitch, lat.theta)


def fit_ideal_lattice(
    xy_px: np.ndarray,
    ij: np.ndarray,
    basis_mm: np.ndarray,
    spacing,
    size: tuple[int, int],
    centre_px,
    radius_px: float,
) -> tuple[np.ndarray, float, np.ndarray]:
    """Rotation and position of the ideal lattice (nominal pitch) fitted to the central
    markers. Returns (ideal pixels of every ``ij``, angle degrees, origin pixel)."""
    w, h = size
    sx, sy = spacing
    c_img = np.array([(w - 1) / 2, (h - 1) / 2])
    mm = (xy_px - c_img) * np.array([sx, sy])
    lat_mm = ij @ basis_mm.T
    r = np.linalg.norm(xy_px - np.asarray(centre_px), axis=1)
    r_lim = np.sort(r)[min(len(r) - 1, max(30, len(r) // 8))]
    sel = r <= r_lim
    pa, pb = lat_mm[sel], mm[sel]
    ma, mb = pa.mean(axis=0), pb.mean(axis=0)
    za = (pa - ma)[:, 0] + 1j * (pa - ma)[:, 1]
    zb = (pb - mb)[:, 0] + 1j * (pb - mb)[:, 1]
    rot = np.vdot(za, zb)
    rot = rot / abs(rot)
    zl = (lat_mm - ma)[:, 0] + 1j * (lat_mm - ma)[:, 1]
    zi = rot * zl + (mb[0] + 1j * mb[1])
    ideal_mm = np.column_stack([zi.real, zi.imag])
    ideal_px = ideal_mm / np.array([sx, sy]) + c_img
    o = rot * (-(ma[0] + 1j * ma[1])) + (mb[0] + 1j * mb[1])
    origin_px = np.array([o.real, o.imag]) / np.array([sx, sy]) + c_img
    return ideal_px, float(np.degrees(np.angle(rot))), origin_px


def calibrate_plate(
    image: np.ndarray,
    phantom: Phantom,
    pixel_spacing: tuple[float, float],
    *,
    sdd_mm: float | None = None,
    sdd_origin: str | None = None,
    markers_bright: bool | None = None,
    metadata: dict | None = None,
):
    """Distortion-only calibration from one plate frame -> ``CalibrationResult``.

    ``sdd_mm`` sets the nominal source ``(0, 0, -SDD)``; None uses the default of 1000 mm
    and says so in the profile (``source_to_detector_origin``).
    """
    from .calibrate import PROFILE_FORMAT, CalibrationError, CalibrationResult
    from .detect import Detections

    grid = phantom.grid
    img = np.asarray(image)
    if img.ndim != 2:
        raise CalibrationError(f"image must be a 2-D grey image, got shape {img.shape}")
    h, w = img.shape
    sx, sy = float(pixel_spacing[0]), float(pixel_spacing[1])
    if sdd_mm is None:
        sdd, origin = DEFAULT_SDD_MM, "default (no DistanceSourceToDetector and no --sdd)"
    else:
        sdd = float(sdd_mm)
        origin = sdd_origin or "given"
        if not (np.isfinite(sdd) and 100 <= sdd <= 5000):
            raise CalibrationError(f"source-to-detector distance must be 100..5000 mm, got {sdd}")
    try:
        pl = find_plate_lattice(img, grid, (sx, sy), markers_bright=markers_bright)
    except PlateError as exc:
        raise CalibrationError(str(exc)) from None
    det = pl.detections
    fc = det.field.centre
    fr = det.field.radius if np.isfinite(det.field.radius) else 0.5 * min(w, h)
    ideal, angle_deg, origin_px = fit_ideal_lattice(
        pl.xy, pl.ij, grid.basis_mm, (sx, sy), (w, h), fc, fr
    )
    centre_px = ((w - 1) / 2, (h - 1) / 2)
    scale_px = ((w - 1) / 2, (h - 1) / 2)
    try:
        fit = fit_poly_select_order(pl.xy, ideal, centre_px, scale_px, orders=(3, 4, 5))
    except ValueError as exc:
        raise CalibrationError(f"distortion fit failed: {exc}") from None
    forward = fit.poly
    # re-centre the ideal lattice on the fit (outliers removed), then refit once
    und = forward.apply(pl.xy)
    used = fit.weights > 0.5
    _check_plate_coverage(pl.xy[used], fc, fr)
    vv, uu = np.mgrid[0:h:8, 0:w:8]
    m = det.field.mask[vv, uu]
    region = np.column_stack([uu[m], vv[m]]).astype(np.float64)
    inverse = fit_inverse(forward, region)
    res_px = und - ideal
    rn_px = np.linalg.norm(res_px, axis=1)
    rn_mm = np.linalg.norm(res_px * np.array([sx, sy]), axis=1)
    ids = [f"L{i:+04d}{j:+04d}" for i, j in pl.ij]
    source = np.array([0.0, 0.0, -sdd])
    K = intrinsics_from_source(source, w, h, (sx, sy))
    beads = [
        {
            "id": ids[k],
            "plane": 0,
            "detected_px": [float(pl.xy[k, 0]), float(pl.xy[k, 1])],
            "dewarped_px": [float(und[k, 0]), float(und[k, 1])],
            "expected_px": [float(ideal[k, 0]), float(ideal[k, 1])],
            "residual_px": float(rn_px[k]),
            "used": bool(used[k]),
            "held_out": False,
        }
        for k in range(len(ids))
    ]

    def summary(values):
        return {
            "rms": float(np.sqrt(np.mean(values[used] ** 2))),
            "max": float(np.max(values[used])),
            "per_bead": {n: float(v) for n, v in zip(ids, values, strict=True)},
        }

    md = metadata or {}
    profile = {
        "format": PROFILE_FORMAT,
        "version": 1,
        "device": md.get("device"),
        "phantom": phantom.name,
        "phantom_kind": "grid_plate",
        "image": md.get("image"),
        "primary_angle_deg": md.get("primary_angle_deg"),
        "secondary_angle_deg": md.get("secondary_angle_deg"),
        "width": int(w),
        "height": int(h),
        "pixel_spacing_mm": [sx, sy],
        "flip_horizontal": False,
        "phantom_rotation_deg": 0,
        "forward": forward.to_dict(),
        "inverse": inverse.to_dict(),
        "source": "nominal",
        "source_mm": [float(v) for v in source],
        "source_to_detector_mm": sdd,
        "source_to_detector_origin": origin,
        "source_uncertainty_mm": None,
        "K": K.tolist(),
        "lattice": {
            "kind": grid.lattice,
            "marker": grid.marker,
            "pitch_mm": grid.pitch_mm,
            "pitch_px_ideal": [grid.pitch_mm / sx, grid.pitch_mm / sy],
            "pitch_mm_observed_centre": float(pl.pitch_px_observed * 0.5 * (sx + sy)),
            "angle_deg": angle_deg,
            "origin_px": [float(origin_px[0]), float(origin_px[1])],
            "markers_indexed": int(len(ids)),
            "markers_dropped_at_edge": int(det.n_dropped_edge),
            "field_centre_px": [float(fc[0]), float(fc[1])],
            "field_radius_px": float(det.field.radius) if np.isfinite(det.field.radius) else None,
        },
        "residuals_px": summary(rn_px),
        "residuals_mm": summary(rn_mm),
        "loo_rms_px": float(fit.loo_rms),
        "source_residuals_px": {},
        "beads_used": int(used.sum()),
        "beads_far_used": 0,
        "beads_detected": int(len(det.xy)),
        "beads_hidden": [],
        "beads": beads,
        "beads_bright": det.markers_bright,
        "calibrated_by": md.get("calibrated_by"),
        "calibrated_at": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }
    detections = Detections(
        det.xy,
        det.radius,
        det.integral,
        det.contrast,
        det.circularity,
        fc,
        float(det.field.radius),
        det.inner,
        det.markers_bright,
        det.noise,
    )
    return CalibrationResult(
        profile=profile,
        forward=forward,
        inverse=inverse,
        source=None,
        K=K,
        flip=False,
        rotation_deg=0,
        detections=detections,
        near_ids=ids,
        near_detected_px=pl.xy,
        near_target_px=ideal,
        near_used=used,
    )


def _check_plate_coverage(xy: np.ndarray, centre, radius: float) -> None:
    """Refuse when a quadrant of the field holds almost no usable markers."""
    from .calibrate import QUADRANTS, CalibrationError

    c = np.asarray(centre)
    inner = np.linalg.norm(xy - c, axis=1) < 0.9 * radius
    q = (xy[inner] > c).astype(int)
    counts = {key: int(np.sum(np.all(q == key, axis=1))) for key in QUADRANTS}
    total = sum(counts.values())
    for key, name in QUADRANTS.items():
        if counts[key] < max(5, 0.05 * total):
            raise CalibrationError(
                f"only {counts[key]} plate markers in the {name} quadrant of the field: "
                "too few to fit the distortion"
            )


def measure_lattice_deviation(
    image: np.ndarray,
    grid,
    spacing: tuple[float, float],
    *,
    central_fraction: float = CENTRAL_FRACTION,
    markers_bright: bool | None = None,
    field_centre=None,
    field_radius: float | None = None,
    region=None,
) -> dict:
    """How far a frame's markers are from a perfect lattice (pixels): detect and index the
    markers, fit the best lattice (rotation, position and pitch free) to those within
    ``central_fraction`` of the field radius (the field found in ``image`` unless
    ``field_centre``/``field_radius`` are given; ``region``, a function of (N, 2) pixels
    returning a boolean mask, overrides both), and report the RMS and max distance."""
    from .lattice import lattice_fit_rms

    pl = find_plate_lattice(image, grid, spacing, markers_bright=markers_bright)
    if region is not None:
        sel = np.asarray(region(pl.xy), bool)
    else:
        c = np.asarray(field_centre if field_centre is not None else pl.detections.field.centre)
        r = field_radius if field_radius is not None else pl.detections.field.radius
        if not np.isfinite(r):
            r = 0.5 * min(image.shape)
        sel = np.linalg.norm(pl.xy - c, axis=1) <= central_fraction * r
    sx, sy = spacing
    basis_px = grid.basis_mm / np.array([[sx], [sy]])
    rms, res = lattice_fit_rms(pl.ij[sel], pl.xy[sel], basis_px)
    rn = np.linalg.norm(res, axis=1)
    return {
        "rms_px": rms,
        "max_px": float(rn.max()),
        "p95_px": float(np.percentile(rn, 95)),
        "n_markers": int(sel.sum()),
        "n_indexed": int(len(pl.xy)),
    }
