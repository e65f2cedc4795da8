"""Phantom image simulator for an image-intensifier C-arm.

Beads of a :class:`~calibration.engine.phantom.Phantom` (detector frame, mm) are
projected through a point source ``S`` onto the detector plane z = 0, giving ideal
(dewarped) pixels; an image-intensifier distortion, implemented as the map from dewarped
to distorted pixels (radial pincushion + S-distortion + small ellipticity, 5-10 mm at the
field edge), moves them to where the device records them. Intensities follow
``I = I0 * gain * exp(-(beads + anatomy))``; then blur, noise and a circular field of view.
The output is a raw detector image (beads dark, field bright, outside the field dark).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from .phantom import Phantom

BEAD_MU_PER_MM = 0.5  # steel-ish linear attenuation used for rendering


@dataclass
class IIDistortion:
    """Image-intensifier distortion, dewarped -> distorted, in detector mm about the centre.

    ``q = p - centre``; ``r = |q| / radius``;
    radial: ``q *= 1 + k1 r^2 + k2 r^4``; S-distortion: rotate by ``phi0 * r^2``;
    ellipticity: ``y *= 1 + ell``.
    """

    k1: float = 0.05
    k2: float = 0.005
    phi0: float = 0.025
    ell: float = 0.003
    centre_mm: tuple[float, float] = (1.5, -1.0)
    radius_mm: float = 115.0

    def distort_mm(self, p: np.ndarray) -> np.ndarray:
        p = np.asarray(p, dtype=np.float64)
        q = p - np.asarray(self.centre_mm)
        r2 = np.sum(q**2, axis=-1) / self.radius_mm**2
        q = q * (1 + self.k1 * r2 + self.k2 * r2**2)[..., None]
        phi = self.phi0 * r2
        c, s = np.cos(phi), np.sin(phi)
        out = np.stack([c * q[..., 0] - s * q[..., 1], s * q[..., 0] + c * q[..., 1]], axis=-1)
        out[..., 1] *= 1 + self.ell
        return out + np.asarray(self.centre_mm)

    def undistort_mm(self, d: np.ndarray, iterations: int = 30) -> np.ndarray:
        """Numerical inverse (fixed-point iteration; converges for these small distortions)."""
        d = np.asarray(d, dtype=np.float64)
        p = d.copy()
        for _ in range(iterations):
            p = p - (self.distort_mm(p) - d)
        return p

    @classmethod
    def random(cls, rng: np.random.Generator, radius_mm: float = 115.0) -> IIDistortion:
        return cls(
            k1=float(rng.uniform(0.035, 0.065)),
            k2=float(rng.uniform(0.0, 0.01)),
            phi0=float(rng.uniform(0.012, 0.03) * rng.choice([-1, 1])),
            ell=float(rng.uniform(-0.004, 0.004)),
            centre_mm=(float(rng.uniform(-3, 3)), float(rng.uniform(-3, 3))),
            radius_mm=radius_mm,
        )


@dataclass
class SimGeometry:
    """Detector size (pixels), pixel spacing (mm) and true effective source (detector frame)."""

    width: int = 512
    height: int = 512
    spacing: tuple[float, float] = (0.5, 0.5)
    source_mm: tuple[float, float, float] = (0.0, 0.0, -1000.0)

    def mm_to_px(self, xy: np.ndarray) -> np.ndarray:
        xy = np.asarray(xy, dtype=np.float64)
        return np.stack(
            [
                xy[..., 0] / self.spacing[0] + (self.width - 1) / 2,
                xy[..., 1] / self.spacing[1] + (self.height - 1) / 2,
            ],
            axis=-1,
        )

    def px_to_mm(self, uv: np.ndarray) -> np.ndarray:
        uv = np.asarray(uv, dtype=np.float64)
        return np.stack(
            [
                (uv[..., 0] - (self.width - 1) / 2) * self.spacing[0],
                (uv[..., 1] - (self.height - 1) / 2) * self.spacing[1],
            ],
            axis=-1,
        )

    @property
    def K(self) -> np.ndarray:
        sx, sy = self.spacing
        f = -self.source_mm[2]
        return np.array(
            [
                [f / sx, 0, (self.width - 1) / 2 + self.source_mm[0] / sx],
                [0, f / sy, (self.height - 1) / 2 + self.source_mm[1] / sy],
                [0, 0, 1],
            ]
        )


def project_to_detector(xyz: np.ndarray, source: np.ndarray) -> np.ndarray:
    """Central projection of (N, 3) detector-frame points from ``source`` onto z = 0 (mm)."""
    xyz = np.asarray(xyz, dtype=np.float64).reshape(-1, 3)
    s = np.asarray(source, dtype=np.float64)
    t = -s[2] / (xyz[:, 2] - s[2])
    return s[:2] + (xyz[:, :2] - s[:2]) * t[:, None]


@dataclass
class SimResult:
    image: np.ndarray  # float32 raw intensities (beads dark), stored orientation
    geometry: SimGeometry
    distortion: IIDistortion
    bead_ids: list[str]
    true_px: dict[str, np.ndarray]  # distorted pixel position of every visible bead (stored image)
    true_dewarped_px: dict[str, np.ndarray]  # ideal pinhole pixel of every bead
    visible: dict[str, bool]
    hidden: list[str]
    flip: bool
    rotation_deg: float
    fov_centre_px: tuple[float, float]
    fov_radius_px: float
    spurious_px: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))

    def forward_gt(self, pts: np.ndarray) -> np.ndarray:
        """True distorted (stored-image) pixels -> dewarped pixels."""
        pts = np.asarray(pts, dtype=np.float64).reshape(-1, 2).copy()
        g = self.geometry
        if self.flip:
            pts[:, 0] = g.width - 1 - pts[:, 0]
        return g.mm_to_px(self.distortion.undistort_mm(g.px_to_mm(pts)))

    def inverse_gt(self, pts: np.ndarray) -> np.ndarray:
        """Dewarped pixels -> true distorted (stored-image) pixels."""
        g = self.geometry
        out = g.mm_to_px(self.distortion.distort_mm(g.px_to_mm(np.asarray(pts, float))))
        out = out.reshape(-1, 2)
        if self.flip:
            out[:, 0] = g.width - 1 - out[:, 0]
        return out


def _render_sphere(
    img: np.ndarray,
    centre: np.ndarray,
    jac_mm: np.ndarray,
    radius_mm: float,
    mu: float,
    ss: int = 4,
) -> None:
    """Add the line integral of a sphere (projected radius ``radius_mm`` on the detector) at
    distorted pixel ``centre``; ``jac_mm`` maps distorted pixel offsets to detector mm."""
    h, w = img.shape
    scale = np.sqrt(abs(np.linalg.det(jac_mm)))
    half = int(np.ceil(radius_mm / scale * 1.3)) + 2
    x0, y0 = int(np.floor(centre[0])) - half, int(np.floor(centre[1])) - half
    x1, y1 = x0 + 2 * half + 1, y0 + 2 * half + 1
    if x1 <= 0 or y1 <= 0 or x0 >= w or y0 >= h:
        return
    offs = (np.arange(ss) + 0.5) / ss - 0.5
    xs = np.arange(x0, x1)[None, :, None, None] + offs[None, None, None, :]
    ys = np.arange(y0, y1)[:, None, None, None] + offs[None, None, :, None]
    dx = xs - centre[0]
    dy = ys - centre[1]
    mx = jac_mm[0, 0] * dx + jac_mm[0, 1] * dy
    my = jac_mm[1, 0] * dx + jac_mm[1, 1] * dy
    rr = (mx**2 + my**2) / radius_mm**2
    val = 2 * radius_mm * mu * np.sqrt(np.clip(1 - rr, 0, None))
    patch = val.mean(axis=(2, 3))
    cx0, cy0 = max(x0, 0), max(y0, 0)
    cx1, cy1 = min(x1, w), min(y1, h)
    img[cy0:cy1, cx0:cx1] += patch[cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0]


def simulate_phantom_image(
    phantom: Phantom,
    geometry: SimGeometry | None = None,
    distortion: IIDistortion | None = None,
    *,
    rng: np.random.Generator | int | None = 0,
    blur_px: float = 0.8,
    noise: float = 0.01,
    i0: float = 40000.0,
    fov_radius_mm: float = 115.0,
    anatomy: np.ndarray | None = None,
    hide: list[str] | None = None,
    hide_fraction: float = 0.0,
    n_spurious: int = 0,
    rotation_deg: float = 0.0,
    flip: bool = False,
    vignetting: float = 0.25,
    render_cut_beads: bool = False,
) -> SimResult:
    """Render a phantom image and its ground truth.

    ``anatomy`` is an optional additive line-integral image (e.g. a DRR, attenuation-
    positive) in the dewarped pinhole frame, any size (resized to the detector); it is
    distorted like everything else. ``rotation_deg`` turns the phantom about the detector
    z axis; ``flip`` mirrors the stored image left-right (device storing mirrored images).
    ``noise`` is the relative standard deviation at the full-field intensity.
    ``render_cut_beads`` also draws the beads the field edge cuts (partly visible; they are
    not in ``true_px``); by default only beads wholly inside the field are drawn.
    """
    rng = np.random.default_rng(rng)
    g = geometry or SimGeometry()
    dist = distortion or IIDistortion(radius_mm=fov_radius_mm)
    w, h = g.width, g.height
    source = np.asarray(g.source_mm, dtype=np.float64)

    th = np.deg2rad(rotation_deg)
    rot = np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
    xyz = phantom.xyz.copy()
    xyz[:, :2] = xyz[:, :2] @ rot.T
    det_mm = project_to_detector(xyz, source)
    mag = -source[2] / (xyz[:, 2] - source[2])
    dewarped_px = g.mm_to_px(det_mm)
    dist_mm = dist.distort_mm(det_mm)
    dist_px = g.mm_to_px(dist_mm)

    # field of view: a circle in the distorted image
    fov_c_px = np.array([(w - 1) / 2, (h - 1) / 2])
    fov_r_px = fov_radius_mm / g.spacing[0]
    ids = phantom.ids
    hidden = set(hide or [])
    if hide_fraction > 0:
        pool = [i for i in ids if i not in hidden]
        k = int(round(hide_fraction * len(ids)))
        hidden |= set(rng.choice(pool, size=min(k, len(pool)), replace=False).tolist())

    line = np.zeros((h, w), dtype=np.float64)
    true_px: dict[str, np.ndarray] = {}
    visible: dict[str, bool] = {}
    eps = 1e-3
    for k, bid in enumerate(ids):
        c = dist_px[k]
        r_proj = phantom.beads[k].diameter_mm / 2 * mag[k]
        in_fov = np.hypot(*(c - fov_c_px)) + r_proj / g.spacing[0] + 2 < fov_r_px
        vis = bool(in_fov and bid not in hidden)
        visible[bid] = vis
        cut = (
            render_cut_beads
            and not in_fov
            and np.hypot(*(c - fov_c_px)) - r_proj / g.spacing[0] - 2 < fov_r_px
        )
        if bid in hidden or not (in_fov or cut):
            continue
        # Jacobian of distorted px -> detector mm (numerical, through the inverse map)
        m0 = dist.undistort_mm(dist_mm[k][None])[0]
        jx = dist.undistort_mm((dist_mm[k] + [eps * g.spacing[0], 0])[None])[0] - m0
        jy = dist.undistort_mm((dist_mm[k] + [0, eps * g.spacing[1]])[None])[0] - m0
        jac = np.stack([jx, jy], axis=1) / eps
        _render_sphere(line, c, jac, r_proj, BEAD_MU_PER_MM)
        if in_fov:
            true_px[bid] = c.copy()

    # spurious blobs: small discs of bead-like size anywhere in the field
    spur = []
    for _ in range(n_spurious):
        for _try in range(50):
            ang, rad = rng.uniform(0, 2 * np.pi), fov_r_px * np.sqrt(rng.uniform(0, 0.8))
            c = fov_c_px + rad * np.array([np.cos(ang), np.sin(ang)])
            if (
                len(true_px) == 0
                or np.min(np.linalg.norm(np.array(list(true_px.values())) - c, axis=1))
                > 4.0 / g.spacing[0]
            ):
                break
        r_mm = rng.uniform(0.8, 2.0)
        jac = np.diag(g.spacing) * rng.uniform(0.8, 1.25, size=2)
        _render_sphere(line, c, jac, r_mm, BEAD_MU_PER_MM * rng.uniform(0.5, 1.5))
        spur.append(c)

    if anatomy is not None:
        an = np.asarray(anatomy, dtype=np.float32)
        if an.shape != (h, w):
            an = cv2.resize(an, (w, h), interpolation=cv2.INTER_LINEAR)
        uu, vv = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
        und = g.mm_to_px(dist.undistort_mm(g.px_to_mm(np.stack([uu, vv], axis=-1))))
        line += cv2.remap(
            an,
            und[..., 0].astype(np.float32),
            und[..., 1].astype(np.float32),
            cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_REPLICATE,
        )

    uu, vv = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
    rr = np.hypot(uu - fov_c_px[0], vv - fov_c_px[1]) / fov_r_px
    gain = 1 - vignetting * np.clip(rr, 0, 1) ** 2
    fov = np.clip((fov_r_px - rr * fov_r_px) + 0.5, 0, 1)  # anti-aliased edge
    img = i0 * gain * np.exp(-line)
    img = img * fov + 0.02 * i0 * (1 - fov)
    if blur_px > 0:
        img = cv2.GaussianBlur(img, (0, 0), blur_px)
    if noise > 0:
        img = img + rng.normal(size=img.shape) * noise * np.sqrt(i0 * np.clip(img, 1, None))
    img = np.clip(img, 0, 65535)

    dewarped = {bid: dewarped_px[k].copy() for k, bid in enumerate(ids)}
    if flip:
        img = img[:, ::-1]
        for bid in true_px:
            true_px[bid] = np.array([w - 1 - true_px[bid][0], true_px[bid][1]])
        spur = [np.array([w - 1 - c[0], c[1]]) for c in spur]
    return SimResult(
        image=np.ascontiguousarray(img.astype(np.float32)),
        geometry=g,
        distortion=dist,
        bead_ids=ids,
        true_px=true_px,
        true_dewarped_px=dewarped,
        visible=visible,
        hidden=sorted(hidden),
        flip=flip,
        rotation_deg=rotation_deg,
        fov_centre_px=(float(fov_c_px[0]), float(fov_c_px[1])),
        fov_radius_px=float(fov_r_px),
        spurious_px=np.array(spur).reshape(-1, 2),
    )


def synthetic_anatomy(
    width: int, height: int, rng: np.random.Generator | int | None = 0
) -> np.ndarray:
    """Smooth pelvis-like line-integral image (soft tissue slab, bony rings and bars)."""
    rng = np.random.default_rng(rng)
    uu, vv = np.meshgrid(np.linspace(-1, 1, width), np.linspace(-1, 1, height))
    img = 1.5 * np.exp(-(uu**2 / 0.8 + vv**2 / 1.2))
    for side in (-1, 1):  # iliac wings / acetabula as rings
        cx, cy = side * rng.uniform(0.35, 0.5), rng.uniform(-0.1, 0.2)
        r = np.hypot((uu - cx) / 0.35, (vv - cy) / 0.45)
        img += 1.2 * np.exp(-((r - 1) ** 2) / 0.01) + 0.6 * (r < 1)
        r2 = np.hypot((uu - side * 0.3) / 0.12, (vv - 0.55) / 0.12)
        img += 1.0 * np.exp(-((r2 - 1) ** 2) / 0.02)
    img += 0.9 * np.exp(-(uu**2) / 0.01) * (vv < 0.3)  # spine / sacrum
    return cv2.GaussianBlur(img.astype(np.float32), (0, 0), 1.5)


# --------------------------------------------------------------------------------------
# Dewarping grid plates (``grid`` phantoms): realistic image-intensifier frames


def plate_distortion(
    rng: np.random.Generator | int | None = None,
    *,
    strength: float = 1.0,
    radius_mm: float = 100.0,
) -> IIDistortion:
    """A typical image intensifier's distortion for plate frames: pincushion plus an
    S-distortion about a centre a few mm off the image centre.

    ``strength`` 1 gives raw frames whose markers are about 0.8-0.9 px (at 0.2 mm pixels)
    off the best-fitting perfect lattice in the central 80 % of the field; larger values
    scale the pincushion and the S-twist together.
    """
    rng = np.random.default_rng(rng)
    return IIDistortion(
        k1=float(strength * rng.uniform(0.0165, 0.019)),
        k2=float(strength * rng.uniform(0.0, 0.003)),
        phi0=float(strength * rng.uniform(0.007, 0.0085) * rng.choice([-1, 1])),
        ell=float(rng.uniform(-0.001, 0.001)),
        centre_mm=(float(rng.uniform(-4, 4)), float(rng.uniform(-4, 4))),
        radius_mm=radius_mm,
    )


@dataclass
class PlateSimResult:
    """A simulated plate frame and its ground truth (stored-image pixels)."""

    image: np.ndarray  # uint16, 12-bit values (0..4095), raw intensities
    geometry: SimGeometry
    distortion: IIDistortion
    ij: np.ndarray  # (N, 2) lattice indices of markers wholly inside the field
    true_px: np.ndarray  # (N, 2) their distorted (recorded) pixels
    true_dewarped_px: np.ndarray  # (N, 2) their ideal pinhole pixels
    cut_px: np.ndarray  # (M, 2) distorted pixels of markers cut by the field edge
    fov_centre_px: tuple[float, float]
    fov_radius_px: float
    angle_deg: float
    offset_mm: tuple[float, float]

    def forward_gt(self, pts: np.ndarray) -> np.ndarray:
        """True distorted pixels -> dewarped pixels."""
        g = self.geometry
        return g.mm_to_px(self.distortion.undistort_mm(g.px_to_mm(np.asarray(pts, float))))

    def inverse_gt(self, pts: np.ndarray) -> np.ndarray:
        """Dewarped pixels -> distorted pixels."""
        g = self.geometry
        return g.mm_to_px(self.distortion.distort_mm(g.px_to_mm(np.asarray(pts, float))))


def _plate_lattice_distance(px: np.ndarray, py: np.ndarray, basis, rot, off) -> np.ndarray:
    """Distance (mm) of points (px, py) to the nearest point of the lattice
    ``rot @ basis @ (i, j) + off`` (component arrays, any shape)."""
    m = rot @ basis
    minv = np.linalg.inv(m)
    x, y = px - off[0], py - off[1]
    q0 = minv[0, 0] * x + minv[0, 1] * y
    q1 = minv[1, 0] * x + minv[1, 1] * y
    f0 = q0 - np.floor(q0)
    f1 = q1 - np.floor(q1)
    best = None
    for di in (0.0, 1.0):
        for dj in (0.0, 1.0):
            a, b = f0 - di, f1 - dj
            ex = m[0, 0] * a + m[0, 1] * b
            ey = m[1, 0] * a + m[1, 1] * b
            d2 = ex * ex + ey * ey
            best = d2 if best is None else np.minimum(best, d2)
    return np.sqrt(best)


def simulate_plate_image(
    plate,
    geometry: SimGeometry | None = None,
    distortion: IIDistortion | None = None,
    *,
    rng: np.random.Generator | int | None = 0,
    angle_deg: float | None = None,
    offset_mm: tuple[float, float] | None = None,
    fov_radius_px: float | None = None,
    fov_centre_offset_px: tuple[float, float] | None = None,
    fov_shape: str = "round",
    edge_softness_px: float = 6.0,
    vignetting: float = 0.55,
    brightness_gradient: float = 0.12,
    plate_transmission: float = 0.35,
    bead_mu_per_mm: float = 1.2,
    blur_px: float = 1.1,
    glare: float = 0.08,
    peak_counts: float = 3600.0,
    dark_counts: float = 64.0,
    electrons_per_count: float = 1.0,
    read_noise_counts: float = 2.0,
    supersample: int = 3,
) -> PlateSimResult:
    """Render one raw frame of a dewarping plate seen through an image intensifier.

    ``plate`` is a :class:`~calibration.engine.phantom.Phantom` with a ``grid`` (or the
    :class:`GridPlate` itself). The plate lies on the detector (z = 0) at a random
    in-plane rotation and offset (``angle_deg``/``offset_mm`` override). Holes transmit
    fully and the plate ``plate_transmission``; beads attenuate ``exp(-mu * chord)``.
    The field is round (or octagonal) with a soft edge, its brightness falls off towards
    the edge (``vignetting``: 0.55 leaves 45 % at the rim) with a linear gradient on top;
    then blur (``blur_px``, the intensifier's and camera's sharpness), veiling glare (a
    ``glare`` fraction of the signal spread over ~30 px), quantum noise (``electrons_per_
    count`` quanta per count: 1 gives about 2 % noise on the bright field), read noise, a
    dark offset and 12-bit quantisation (``peak_counts`` at the centre).
    """
    grid = getattr(plate, "grid", plate)
    rng = np.random.default_rng(rng)
    g = geometry or SimGeometry(1024, 1024, (0.2, 0.2))
    w, h = g.width, g.height
    if fov_radius_px is None:
        fov_radius_px = 0.478 * min(w, h)
    if distortion is None:
        distortion = plate_distortion(rng, radius_mm=fov_radius_px * g.spacing[0])
    if angle_deg is None:
        angle_deg = float(rng.uniform(-180, 180))
    if offset_mm is None:
        offset_mm = tuple(float(v) for v in rng.uniform(-1, 1, 2) * grid.pitch_mm * 3)
    if fov_centre_offset_px is None:
        fov_centre_offset_px = tuple(float(v) for v in rng.uniform(-6, 6, 2))
    th = np.deg2rad(angle_deg)
    rot = np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
    basis = grid.basis_mm
    r_mark = grid.diameter_mm / 2

    # undistorted detector mm of every pixel centre, and its derivative along u and v
    # (exact on a coarse grid every 8 px, Catmull-Rom in between: the map is smooth; not
    # cv2.remap, whose fixed-point weights would quantise the positions to 1/32 cell)
    from .dewarp import _cubic_weights

    step = 8
    gw = (w - 1 + step - 1) // step + 1
    gh = (h - 1 + step - 1) // step + 1
    cgv, cgu = np.mgrid[0:gh, 0:gw].astype(np.float64) * step
    coarse = distortion.undistort_mm(g.px_to_mm(np.stack([cgu, cgv], axis=-1)), iterations=20)
    ay = _cubic_weights(h, gh, step)
    ax = _cubic_weights(w, gw, step)
    und = np.stack([ay @ coarse[..., k] @ ax.T for k in range(2)], axis=-1)
    uu, vv = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
    du = np.gradient(und, axis=1)
    dv = np.gradient(und, axis=0)
    trans = np.zeros((h, w))
    offs = (np.arange(supersample) + 0.5) / supersample - 0.5
    for ou in offs:
        for ov in offs:
            dist = _plate_lattice_distance(
                und[..., 0] + ou * du[..., 0] + ov * dv[..., 0],
                und[..., 1] + ou * du[..., 1] + ov * dv[..., 1],
                basis,
                rot,
                offset_mm,
            )
            if grid.marker == "hole":
                trans += np.where(dist < r_mark, 1.0, plate_transmission)
            else:
                chord = 2 * np.sqrt(np.clip(r_mark**2 - dist**2, 0, None))
                trans += np.exp(-bead_mu_per_mm * chord)
    trans /= supersample**2

    # field of view: soft-edged circle (or octagon) about a slightly off-centre point
    fc = np.array([(w - 1) / 2 + fov_centre_offset_px[0], (h - 1) / 2 + fov_centre_offset_px[1]])
    dx, dy = uu - fc[0], vv - fc[1]
    if fov_shape == "octagon":
        rr = np.max(
            [np.abs(dx * np.cos(a) + dy * np.sin(a)) for a in np.arange(4) * np.pi / 4], axis=0
        ) / np.cos(np.pi / 8)
    else:
        rr = np.hypot(dx, dy)
    edge = 1.0 / (1.0 + np.exp((rr - fov_radius_px) / max(edge_softness_px / 4, 1e-3)))
    rn = np.clip(rr / fov_radius_px, 0, 1.2)
    gdir = rng.uniform(0, 2 * np.pi)
    gain = (1 - vignetting * rn**2) * (
        1 + brightness_gradient * (np.cos(gdir) * dx + np.sin(gdir) * dy) / fov_radius_px
    )
    signal = peak_counts * gain * trans * edge
    if blur_px > 0:
        signal = cv2.GaussianBlur(signal, (0, 0), blur_px)
    if glare > 0:
        signal = (1 - glare) * signal + glare * cv2.GaussianBlur(signal, (0, 0), 30.0)
    electrons = rng.poisson(np.clip(signal, 0, None) * electrons_per_count)
    img = (
        electrons / electrons_per_count
        + dark_counts
        + rng.normal(0, read_noise_counts, signal.shape)
    )
    img = np.clip(np.round(img), 0, 4095).astype(np.uint16)

    # ground truth: every lattice point that falls in the field
    extent = (fov_radius_px + 20) * max(g.spacing) * 1.2
    n = int(np.ceil(extent / grid.pitch_mm)) + 2
    ii, jj = np.meshgrid(np.arange(-n, n + 1), np.arange(-n, n + 1))
    ij = np.stack([ii.ravel(), jj.ravel()], axis=1)
    ideal_mm = ij @ (rot @ basis).T + np.asarray(offset_mm)
    ideal_mm = ideal_mm[np.linalg.norm(ideal_mm, axis=1) < extent]
    ij = np.round((ideal_mm - np.asarray(offset_mm)) @ np.linalg.inv(rot @ basis).T).astype(int)
    dist_px = g.mm_to_px(distortion.distort_mm(ideal_mm))
    ddx, ddy = dist_px[:, 0] - fc[0], dist_px[:, 1] - fc[1]
    if fov_shape == "octagon":
        rp = np.max(
            [np.abs(ddx * np.cos(a) + ddy * np.sin(a)) for a in np.arange(4) * np.pi / 4], axis=0
        ) / np.cos(np.pi / 8)
    else:
        rp = np.hypot(ddx, ddy)
    r_px = r_mark / min(g.spacing)
    inside = rp + r_px + blur_px * 2 + edge_softness_px < fov_radius_px
    cut = (~inside) & (rp - r_px < fov_radius_px + edge_softness_px)
    return PlateSimResult(
        image=img,
        geometry=g,
        distortion=distortion,
        ij=ij[inside],
        true_px=dist_px[inside],
        true_dewarped_px=g.mm_to_px(ideal_mm[inside]),
        cut_px=dist_px[cut],
        fov_centre_px=(float(fc[0]), float(fc[1])),
        fov_radius_px=float(fov_radius_px),
        angle_deg=float(angle_deg),
        offset_mm=(float(offset_mm[0]), float(offset_mm[1])),
    )


def lattice_fit_rms(
    ij: np.ndarray, xy: np.ndarray, basis: np.ndarray, *, free_scale: bool = True
) -> tuple[float, np.ndarray]:
    """RMS distance (pixels) of points ``xy`` from the best perfect lattice.

    The lattice is ``basis @ ij`` (basis in pixels, columns) moved by the best rotation and
    translation (and uniform scale when ``free_scale``). Returns (rms, residuals (N, 2)).
    """
    ij = np.asarray(ij, dtype=np.float64).reshape(-1, 2)
    xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    ideal = ij @ np.asarray(basis, dtype=np.float64).T
    zi = ideal[:, 0] + 1j * ideal[:, 1]
    zo = xy[:, 0] + 1j * xy[:, 1]
    mi, mo = zi.mean(), zo.mean()
    a = np.vdot(zi - mi, zo - mo) / np.vdot(zi - mi, zi - mi)
    if not free_scale:
        a = a / abs(a)
    fit = a * (zi - mi) + mo
    res = np.stack([(zo - fit).real, (zo - fit).imag], axis=1)
    return float(np.sqrt(np.mean(np.sum(res**2, axis=1)))), res
