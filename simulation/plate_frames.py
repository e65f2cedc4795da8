"""Realistic raw frames of a dewarping grid plate seen through an image intensifier
(tests, benchmarks, the demo): holes or beads on a square or hexagonal lattice at the
detector, a soft-edged round or octagonal field, vignetting, glare, quantum and read noise,
12-bit values. Pixels as in CONVENTIONS.md; plate and distortion in detector mm.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from calibration.engine.dewarp import cubic_weights

from .phantom_frames import IIDistortion, SimGeometry


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


@dataclass
class _PlatePose:
    """The plate's lattice on the detector: ``rot @ basis @ (i, j) + offset`` (mm)."""

    basis: np.ndarray  # (2, 2) lattice basis vectors as columns, mm
    rot: np.ndarray  # (2, 2) in-plane rotation
    offset_mm: tuple[float, float]


def _plate_lattice_distance(px: np.ndarray, py: np.ndarray, pose: _PlatePose) -> np.ndarray:
    """Distance (mm) of points (px, py) to the nearest point of the plate's lattice
    (component arrays, any shape)."""
    m = pose.rot @ pose.basis
    off = pose.offset_mm
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


def _transmission(
    grid,
    g: SimGeometry,
    distortion: IIDistortion,
    pose: _PlatePose,
    *,
    supersample: int,
    plate_transmission: float,
    bead_mu_per_mm: float,
) -> np.ndarray:
    """Fraction of the beam through the plate at every (distorted) pixel, supersampled."""
    w, h = g.width, g.height
    r_mark = grid.diameter_mm / 2
    # undistorted detector mm of every pixel centre, and its derivative along u and v
    # (exact on a coarse grid every 8 px, Catmull-Rom in between: the map is smooth; not
    # cv2.remap, whose fixed-point weights would quantise the positions to 1/32 cell)
    step = 8
    gw = (w - 1 + step - 1) // step + 1
    gh = (h - 1 + step - 1) // step + 1
    cgv, cgu = np.mgrid[0:gh, 0:gw].astype(np.float64) * step
    coarse = distortion.undistort_mm(g.px_to_mm(np.stack([cgu, cgv], axis=-1)), iterations=20)
    ay = cubic_weights(h, gh, step)
    ax = cubic_weights(w, gw, step)
    und = np.stack([ay @ coarse[..., k] @ ax.T for k in range(2)], axis=-1)
    du = np.gradient(und, axis=1)
    dv = np.gradient(und, axis=0)
    trans = np.zeros((h, w))
    offs = (np.arange(supersample) + 0.5) / supersample - 0.5
    for ou in offs:
        for ov in offs:
            dist = _plate_lattice_distance(
                und[..., 0] + ou * du[..., 0] + ov * dv[..., 0],
                und[..., 1] + ou * du[..., 1] + ov * dv[..., 1],
                pose,
            )
            if grid.marker == "hole":
                trans += np.where(dist < r_mark, 1.0, plate_transmission)
            else:
                chord = 2 * np.sqrt(np.clip(r_mark**2 - dist**2, 0, None))
                trans += np.exp(-bead_mu_per_mm * chord)
    return trans / supersample**2


def _field_radius(dx: np.ndarray, dy: np.ndarray, fov_shape: str) -> np.ndarray:
    """Radial coordinate of offsets (dx, dy) from the field centre: the distance for a
    round field, the octagon's gauge (its inscribed-circle radius scaled) otherwise."""
    if fov_shape == "octagon":
        return np.max(
            [np.abs(dx * np.cos(a) + dy * np.sin(a)) for a in np.arange(4) * np.pi / 4], axis=0
        ) / np.cos(np.pi / 8)
    return np.hypot(dx, dy)


def _expose_plate(
    trans: np.ndarray,
    fc: np.ndarray,
    fov_radius_px: float,
    rng: np.random.Generator,
    opts: dict,
) -> np.ndarray:
    """12-bit raw frame of the transmission ``trans`` in a soft-edged field about ``fc``
    (vignetting, gradient, blur, glare, quantum and read noise, dark offset)."""
    h, w = trans.shape
    uu, vv = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
    dx, dy = uu - fc[0], vv - fc[1]
    rr = _field_radius(dx, dy, opts["fov_shape"])
    edge = 1.0 / (1.0 + np.exp((rr - fov_radius_px) / max(opts["edge_softness_px"] / 4, 1e-3)))
    rn = np.clip(rr / fov_radius_px, 0, 1.2)
    gdir = rng.uniform(0, 2 * np.pi)
    gain = (1 - opts["vignetting"] * rn**2) * (
        1 + opts["brightness_gradient"] * (np.cos(gdir) * dx + np.sin(gdir) * dy) / fov_radius_px
    )
    signal = opts["peak_counts"] * gain * trans * edge
    if opts["blur_px"] > 0:
        signal = cv2.GaussianBlur(signal, (0, 0), opts["blur_px"])
    glare = opts["glare"]
    if glare > 0:
        signal = (1 - glare) * signal + glare * cv2.GaussianBlur(signal, (0, 0), 30.0)
    epc = opts["electrons_per_count"]
    electrons = rng.poisson(np.clip(signal, 0, None) * epc)
    img = electrons / epc + opts["dark_counts"] + rng.normal(0, opts["read_noise_counts"], signal.shape)
    return np.clip(np.round(img), 0, 4095).astype(np.uint16)


def _plate_truth(
    grid,
    g: SimGeometry,
    distortion: IIDistortion,
    pose: _PlatePose,
    fc: np.ndarray,
    fov_radius_px: float,
    opts: dict,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Every lattice point that falls in the field: (ij, distorted px, ideal mm) of the
    markers wholly inside it, and the distorted px of those its edge cuts."""
    m = pose.rot @ pose.basis
    extent = (fov_radius_px + 20) * max(g.spacing) * 1.2
    n = int(np.ceil(extent / grid.pitch_mm)) + 2
    ii, jj = np.meshgrid(np.arange(-n, n + 1), np.arange(-n, n + 1))
    ij = np.stack([ii.ravel(), jj.ravel()], axis=1)
    ideal_mm = ij @ m.T + np.asarray(pose.offset_mm)
    ideal_mm = ideal_mm[np.linalg.norm(ideal_mm, axis=1) < extent]
    ij = np.round((ideal_mm - np.asarray(pose.offset_mm)) @ np.linalg.inv(m).T).astype(int)
    dist_px = g.mm_to_px(distortion.distort_mm(ideal_mm))
    rp = _field_radius(dist_px[:, 0] - fc[0], dist_px[:, 1] - fc[1], opts["fov_shape"])
    r_px = grid.diameter_mm / 2 / min(g.spacing)
    soft = opts["edge_softness_px"]
    inside = rp + r_px + opts["blur_px"] * 2 + soft < fov_radius_px
    cut = (~inside) & (rp - r_px < fov_radius_px + soft)
    return ij[inside], dist_px[inside], ideal_mm[inside], dist_px[cut]


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
    pose = _PlatePose(grid.basis_mm, rot, offset_mm)
    trans = _transmission(
        grid, g, distortion, pose, supersample=supersample,
        plate_transmission=plate_transmission, bead_mu_per_mm=bead_mu_per_mm,
    )  # fmt: skip
    # field of view: soft-edged circle (or octagon) about a slightly off-centre point
    fc = np.array([(w - 1) / 2 + fov_centre_offset_px[0], (h - 1) / 2 + fov_centre_offset_px[1]])
    opts = {
        "fov_shape": fov_shape, "edge_softness_px": edge_softness_px, "vignetting": vignetting,
        "brightness_gradient": brightness_gradient, "blur_px": blur_px, "glare": glare,
        "peak_counts": peak_counts, "dark_counts": dark_counts,
        "electrons_per_count": electrons_per_count, "read_noise_counts": read_noise_counts,
    }  # fmt: skip
    img = _expose_plate(trans, fc, fov_radius_px, rng, opts)
    ij, true_px, ideal_mm, cut_px = _plate_truth(
        grid, g, distortion, pose, fc, fov_radius_px, opts
    )
    return PlateSimResult(
        image=img,
        geometry=g,
        distortion=distortion,
        ij=ij,
        true_px=true_px,
        true_dewarped_px=g.mm_to_px(ideal_mm),
        cut_px=cut_px,
        fov_centre_px=(float(fc[0]), float(fc[1])),
        fov_radius_px=float(fov_radius_px),
        angle_deg=float(angle_deg),
        offset_mm=(float(offset_mm[0]), float(offset_mm[1])),
    )
