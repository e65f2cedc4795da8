"""Phantom image simulator for an image-intensifier C-arm (tests, benchmarks, the demo).

Beads of a :class:`~calibration.engine.phantom.Phantom` (detector frame, mm) are
projected through a point source ``S`` onto the detector plane z = 0, giving ideal
(dewarped) pixels; an image-intensifier distortion, implemented as the map from dewarped
to distorted pixels (radial pincushion + S-distortion + small ellipticity, 5-10 mm at the
field edge), moves them to where the device records them. Intensities follow
``I = I0 * gain * exp(-(beads + anatomy))``; then blur, noise and a circular field of view.
The output is a raw detector image (beads dark, field bright, outside the field dark).
Grid-plate frames are in :mod:`simulation.plate_frames`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from calibration.engine.detector import project_to_detector
from calibration.engine.phantom import Phantom
from geometry.camera import Camera

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
        """Intrinsics (pixels) of the dewarped image: :meth:`Camera.from_source`."""
        return Camera.from_source(self.source_mm, self.width, self.height, self.spacing).K


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


def _hidden_beads(
    ids: list[str], hide: list[str] | None, hide_fraction: float, rng: np.random.Generator
) -> set[str]:
    """Beads left out of the image: ``hide`` plus a random ``hide_fraction`` of the rest."""
    hidden = set(hide or [])
    if hide_fraction > 0:
        pool = [i for i in ids if i not in hidden]
        k = int(round(hide_fraction * len(ids)))
        hidden |= set(rng.choice(pool, size=min(k, len(pool)), replace=False).tolist())
    return hidden


def _render_beads(
    line: np.ndarray,
    phantom: Phantom,
    g: SimGeometry,
    dist: IIDistortion,
    dist_mm: np.ndarray,
    mag: np.ndarray,
    fov: tuple[np.ndarray, float],
    hidden: set[str],
    render_cut_beads: bool,
) -> tuple[dict[str, np.ndarray], dict[str, bool]]:
    """Add every bead's line integral to ``line`` at its distorted pixel; returns the true
    (distorted) pixels of the beads wholly inside the field and every bead's visibility.
    ``fov`` is (centre px, radius px) of the circular field."""
    fov_c_px, fov_r_px = fov
    dist_px = g.mm_to_px(dist_mm)
    true_px: dict[str, np.ndarray] = {}
    visible: dict[str, bool] = {}
    eps = 1e-3
    for k, bid in enumerate(phantom.ids):
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
    return true_px, visible


def _render_spurious(
    line: np.ndarray,
    n_spurious: int,
    rng: np.random.Generator,
    fov: tuple[np.ndarray, float],
    true_px: dict[str, np.ndarray],
    spacing: tuple[float, float],
) -> list[np.ndarray]:
    """Small discs of bead-like size anywhere in the field, away from the beads;
    returns their centres (pixels)."""
    fov_c_px, fov_r_px = fov
    spur = []
    for _ in range(n_spurious):
        for _try in range(50):
            ang, rad = rng.uniform(0, 2 * np.pi), fov_r_px * np.sqrt(rng.uniform(0, 0.8))
            c = fov_c_px + rad * np.array([np.cos(ang), np.sin(ang)])
            if (
                len(true_px) == 0
                or np.min(np.linalg.norm(np.array(list(true_px.values())) - c, axis=1))
                > 4.0 / spacing[0]
            ):
                break
        r_mm = rng.uniform(0.8, 2.0)
        jac = np.diag(spacing) * rng.uniform(0.8, 1.25, size=2)
        _render_sphere(line, c, jac, r_mm, BEAD_MU_PER_MM * rng.uniform(0.5, 1.5))
        spur.append(c)
    return spur


def _add_anatomy(
    line: np.ndarray, anatomy: np.ndarray, g: SimGeometry, dist: IIDistortion
) -> None:
    """Add a dewarped-frame line-integral image (resized to the detector), distorted."""
    h, w = line.shape
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


def _expose(
    line: np.ndarray,
    fov: tuple[np.ndarray, float],
    rng: np.random.Generator,
    *,
    i0: float,
    vignetting: float,
    blur_px: float,
    noise: float,
) -> np.ndarray:
    """Raw intensities ``I0 * gain * exp(-line)`` in a circular field, blurred and noisy."""
    fov_c_px, fov_r_px = fov
    h, w = line.shape
    uu, vv = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
    rr = np.hypot(uu - fov_c_px[0], vv - fov_c_px[1]) / fov_r_px
    gain = 1 - vignetting * np.clip(rr, 0, 1) ** 2
    field_w = np.clip((fov_r_px - rr * fov_r_px) + 0.5, 0, 1)  # anti-aliased edge
    img = i0 * gain * np.exp(-line)
    img = img * field_w + 0.02 * i0 * (1 - field_w)
    if blur_px > 0:
        img = cv2.GaussianBlur(img, (0, 0), blur_px)
    if noise > 0:
        img = img + rng.normal(size=img.shape) * noise * np.sqrt(i0 * np.clip(img, 1, None))
    return np.clip(img, 0, 65535)


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

    # field of view: a circle in the distorted image
    fov = (np.array([(w - 1) / 2, (h - 1) / 2]), fov_radius_mm / g.spacing[0])
    ids = phantom.ids
    hidden = _hidden_beads(ids, hide, hide_fraction, rng)
    line = np.zeros((h, w), dtype=np.float64)
    true_px, visible = _render_beads(
        line, phantom, g, dist, dist_mm, mag, fov, hidden, render_cut_beads
    )
    spur = _render_spurious(line, n_spurious, rng, fov, true_px, g.spacing)
    if anatomy is not None:
        _add_anatomy(line, anatomy, g, dist)
    img = _expose(line, fov, rng, i0=i0, vignetting=vignetting, blur_px=blur_px, noise=noise)

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
        fov_centre_px=(float(fov[0][0]), float(fov[0][1])),
        fov_radius_px=float(fov[1]),
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
