"""A start that needs no network: a library of small DRRs over the whole C-arm range,
retrieved by masked normalised cross-correlation with the in-plane shift found by FFT
(no Django).

The library holds, for one CT, a DRR per C-arm view (LAO/RAO -120..120 deg including both
laterals, cranial/caudal -40..40 deg, :class:`LibraryGrid`) rendered with our own
:class:`~registration.engine.drr.DrrRenderer` at a reference source distance, aimed at the
bone centre, on a small square grid of focal ``f_lib`` pixels. An X-ray (any window of the
detector: its camera ``K`` says where its pixels lie) is resampled into the library's
pixel frame about its principal point at a few depth scales ``s`` and detector spins
``psi``; both images are high-passed; for each library view the masked NCC over every
in-plane shift ``d`` is three FFT products (Padfield's masked correlation), so a close-up
finds where its window sits on the whole view.

A match ``(view, psi, s, d)`` becomes a pose ``T_cam_from_world``: the bone centre at depth
``s * z_ref`` on the ray through X-ray pixel ``c + R(psi) d / (a s)`` (``a`` the X-ray ->
library pixel scale), the view's rotation spun by ``psi`` and turned so that the ray to the
centre keeps the library's viewing direction. Angles in degrees, lengths in mm, LPS world.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from geometry.carm import carm_pose

# the reference source-to-bone-centre distance of the library, x source-to-detector
REFERENCE_DEPTH_FRACTION = 0.68


@dataclass(frozen=True)
class LibraryGrid:
    """Views, search ranges and sizes of the library and its retrieval."""

    lao_deg: tuple[float, ...] = tuple(float(a) for a in range(-120, 121, 15))
    cranial_deg: tuple[float, ...] = tuple(float(a) for a in range(-30, 31, 15))
    # first pass: every view at these depth scales, no spin; second: the best views at all
    # (a scale step of 8-9 %: a shot 6 % off the library's depth lost its view to
    # neighbours 15 deg away on a small phantom with steps of 22 %)
    coarse_scales: tuple[float, ...] = (0.84, 0.92, 1.0, 1.09, 1.19)
    fine_scales: tuple[float, ...] = (0.84, 0.88, 0.92, 0.96, 1.0, 1.04, 1.09, 1.14, 1.19)
    spins_deg: tuple[float, ...] = (-8.0, 0.0, 8.0)
    n_fine_views: int = 10
    match_px: int = 32  # the X-ray's larger side maps to this many library pixels
    max_size_px: int = 80  # library images are at most this large (close-ups: the centre)
    samples_per_ray: int = 48
    # high-pass sigma, a fraction of match_px (0: none). pelvis_bone_002, 16 held-out shots
    # (half close-ups): best view within 15 deg 15 / 13 / 14 of 16 at 0 / 0.05 / 0.1, one
    # of the four starts within 15 deg 15 / 16 / 16; a small noise-free phantom's close-ups
    # failed at 0.1 (its window edges dominate a high-passed window)
    highpass_fraction: float = 0.05
    top_k: int = 4
    distinct_deg: float = 15.0  # returned views differ by at least this (LAO or cranial)


@dataclass
class DrrLibrary:
    """Small DRRs of one CT: ``images`` (N, S, S) high-passed, ``angles`` (N, 2) LAO and
    cranial in degrees, ``poses`` (N, 4, 4) ``T_cam_from_world`` at ``z_ref`` mm aimed at
    ``centre`` (LPS mm), intrinsics ``K`` (focal ``f_px`` pixels, centred), and the FFTs of
    the images and of their squares padded to ``pad`` pixels."""

    images: np.ndarray
    angles: np.ndarray
    poses: np.ndarray
    K: np.ndarray
    f_px: float
    z_ref: float
    centre: np.ndarray
    pad: int
    fft_l: torch.Tensor
    fft_l2: torch.Tensor
    fft_view: torch.Tensor  # FFT of the view's support (all ones)
    energy: np.ndarray  # (N,) mean square of each high-passed view
    seconds: float


@dataclass
class LibraryMatch:
    """One retrieved start: masked NCC ``score``, the view, spin, depth scale, shift (library
    pixels) and the resulting ``T_cam_from_world``."""

    score: float
    lao_deg: float
    cranial_deg: float
    spin_deg: float
    scale: float
    shift_px: tuple[float, float]
    T_cam_from_world: np.ndarray


def _highpass(img: np.ndarray, mask: np.ndarray, sigma: float) -> np.ndarray:
    """``img`` minus its masked Gaussian local mean (normalised convolution), 0 outside
    (``sigma`` 0: ``img`` itself, 0 outside)."""
    m = mask.astype(np.float32)
    if sigma <= 0:
        return np.where(mask, img, 0.0).astype(np.float32)
    num = cv2.GaussianBlur(img * m, (0, 0), sigma, borderType=cv2.BORDER_CONSTANT)
    den = cv2.GaussianBlur(m, (0, 0), sigma, borderType=cv2.BORDER_CONSTANT)
    return np.where(mask, img - num / np.maximum(den, 1e-6), 0.0).astype(np.float32)


def library_geometry(K_x: np.ndarray, shape: tuple[int, int], bone_radius_mm: float,
                     sdd_mm: float, grid: LibraryGrid) -> tuple[float, int, float]:
    """``(f_lib pixels, library side S, z_ref mm)`` for an X-ray of intrinsics ``K_x`` and
    ``shape`` (H, W): its larger side maps to ``match_px`` to ``sqrt(2) match_px`` library
    pixels (``f_lib`` in half-octave steps, so that X-rays of nearby scales, e.g.
    close-ups of similar size, share one library); the library shows the whole bone
    (radius ``bone_radius_mm``) at the nearest searched depth, capped at ``max_size_px``."""
    a = grid.match_px / max(shape)
    f = float(K_x[0, 0]) * a
    f = float(2.0 ** (math.ceil(math.log2(f) * 2 - 1e-9) / 2))
    z_ref = REFERENCE_DEPTH_FRACTION * sdd_mm
    z_near = z_ref * min(grid.coarse_scales + grid.fine_scales)
    side = 2.2 * bone_radius_mm * f / z_near
    side = int(min(grid.max_size_px, max(grid.match_px * 1.3, side)))
    side += side % 2
    return f, side, z_ref


def build_library(renderer, centre: np.ndarray, f_px: float, size: int, z_ref: float,
                  grid: LibraryGrid = LibraryGrid(), batch: int = 32) -> DrrLibrary:
    """Render the library of one CT (``renderer``) around ``centre`` (LPS mm)."""
    t0 = time.perf_counter()
    c = (size - 1) / 2.0
    K = np.array([[f_px, 0.0, c], [0.0, f_px, c], [0.0, 0.0, 1.0]])
    angles = np.array([(a, b) for b in grid.cranial_deg for a in grid.lao_deg], np.float64)
    poses = np.stack([carm_pose(a, b, z_ref, centre) for a, b in angles])
    Kt = torch.as_tensor(K, dtype=torch.float32)
    imgs = []
    with torch.no_grad():
        for s in range(0, len(poses), batch):
            T = torch.as_tensor(poses[s:s + batch], dtype=torch.float32)
            imgs.append(renderer.render(T, Kt, size, size,
                                        samples_per_ray=grid.samples_per_ray).cpu().numpy())
    raw = np.concatenate(imgs).astype(np.float32)
    full = np.ones((size, size), bool)
    sigma = grid.highpass_fraction * grid.match_px
    images = np.stack([_highpass(im, full, sigma) for im in raw])
    pad = _fft_size(size + size // 2)
    lt = torch.as_tensor(images)
    fft_l = torch.fft.rfft2(lt, s=(pad, pad))
    fft_l2 = torch.fft.rfft2(lt * lt, s=(pad, pad))
    fft_view = torch.fft.rfft2(torch.ones(size, size), s=(pad, pad))
    return DrrLibrary(images, angles, poses, K, f_px, z_ref, np.asarray(centre, np.float64),
                      pad, fft_l, fft_l2, fft_view, (images ** 2).mean(axis=(1, 2)),
                      time.perf_counter() - t0)


def _fft_size(n: int) -> int:
    """The smallest 2^a 3^b >= n (fast FFT lengths)."""
    best = 1 << max(0, (n - 1).bit_length())
    p3 = 1
    while p3 < 2 * n:
        p2 = p3
        while p2 < n:
            p2 *= 2
        best = min(best, p2)
        p3 *= 3
    return best


def library_for(renderer, centre: np.ndarray, bone_radius_mm: float, K_x: np.ndarray,
                shape: tuple[int, int], sdd_mm: float,
                grid: LibraryGrid = LibraryGrid()) -> DrrLibrary:
    """The library for this X-ray geometry, built once per renderer (CT) and geometry
    bucket and kept on the renderer (a few MB each)."""
    f, size, z_ref = library_geometry(K_x, shape, bone_radius_mm, sdd_mm, grid)
    cache = renderer.__dict__.setdefault("_drr_library_cache", {})
    key = (round(f, 3), size, round(z_ref, 1), tuple(np.round(centre, 2)), grid)
    if key not in cache:
        if len(cache) >= 4:
            cache.pop(next(iter(cache)))
        cache[key] = build_library(renderer, centre, f, size, z_ref, grid)
    return cache[key]


def _warp_xray(img: np.ndarray, valid: np.ndarray, K_x: np.ndarray, lib: DrrLibrary,
               scale: float, spin_deg: float) -> tuple[np.ndarray, np.ndarray]:
    """The X-ray resampled into the library frame: pixel ``u`` goes to
    ``c_lib + a s R(-psi) (u - c_x)``; returns (image, mask) of the library's size."""
    size = lib.images.shape[-1]
    a = lib.f_px / float(K_x[0, 0]) * scale
    ay = lib.f_px / float(K_x[1, 1]) * scale
    th = math.radians(-spin_deg)
    R = np.array([[math.cos(th), -math.sin(th)], [math.sin(th), math.cos(th)]])
    A = R @ np.diag([a, ay])
    c_l = np.full(2, (size - 1) / 2.0)
    b = c_l - A @ np.asarray(K_x[:2, 2], np.float64)
    M = np.concatenate([A, b[:, None]], 1).astype(np.float64)
    src = img.astype(np.float32)
    vm = valid.astype(np.float32)
    shrink = 1.0 / max(a, ay)
    if shrink > 1.5:  # pre-filter: area-average to about twice the target resolution
        k = int(shrink // 1.5)
        h, w = src.shape
        src = cv2.resize(src, (max(1, w // k), max(1, h // k)), interpolation=cv2.INTER_AREA)
        vm = cv2.resize(vm, (max(1, w // k), max(1, h // k)), interpolation=cv2.INTER_AREA)
        sx, sy = w / src.shape[1], h / src.shape[0]
        M = M @ np.array([[sx, 0, 0.5 * sx - 0.5], [0, sy, 0.5 * sy - 0.5], [0, 0, 1]])
    out = cv2.warpAffine(src, M, (size, size), flags=cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
    mask = cv2.warpAffine(vm, M, (size, size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0.0) > 0.99
    return out, mask


def _masked_ncc(lib: DrrLibrary, views: np.ndarray, warped: np.ndarray,
                mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Best masked NCC over in-plane shifts for each of ``views`` -> (scores, du, dv).

    NCC(d) of the masked X-ray ``W`` (zero mean inside its mask ``M``) with the view ``L``
    shifted by ``d``: ``sum W L(.-d) / sqrt(|W|^2 (sum M L^2(.-d) - (sum M L(.-d))^2 / n))``.
    Shifts are limited to where at least 60 % of the mask still falls on the view."""
    P = lib.pad
    m = mask.astype(np.float32)
    n = float(m.sum())
    if n < 16:
        k = len(views)
        return np.full(k, -1.0), np.zeros(k), np.zeros(k)
    w = np.where(mask, warped - warped[mask].mean(), 0.0).astype(np.float32)
    ww = float((w * w).sum())
    fw = torch.fft.rfft2(torch.as_tensor(w), s=(P, P))
    fm = torch.fft.rfft2(torch.as_tensor(m), s=(P, P))
    idx = torch.as_tensor(views, dtype=torch.long)
    fl, fl2 = lib.fft_l[idx].conj(), lib.fft_l2[idx].conj()
    # sum_p A(p) L(p - d) = IFFT(F(A) conj(F(L)))(d), the three sums in one inverse FFT
    prods = torch.stack([fw[None] * fl, fm[None] * fl, fm[None] * fl2])
    num, s1, s2 = torch.fft.irfft2(prods, s=(P, P))
    # floor: a window over the view's empty margin has no variance to speak of
    floor = torch.as_tensor(0.05 * n * lib.energy[views], dtype=s2.dtype)[:, None, None]
    var = torch.maximum(s2 - s1 * s1 / n, floor)
    ncc = num / torch.sqrt(var * ww)
    # only shifts whose mask keeps most of its area on the view's content
    coverage = torch.fft.irfft2(fm * lib.fft_view.conj(), s=(P, P)) / n
    ncc = torch.where(coverage[None] > 0.6, ncc, torch.full_like(ncc, -1.0))
    flat = ncc.reshape(len(views), -1)
    best, arg = flat.max(dim=1)
    iv, iu = (arg // P).numpy(), (arg % P).numpy()
    c = ncc.numpy()
    k = np.arange(len(views))
    # sub-pixel peak: a parabola through the peak and its two neighbours on each axis
    du = iu + _vertex(c[k, iv, (iu - 1) % P], c[k, iv, iu], c[k, iv, (iu + 1) % P])
    dv = iv + _vertex(c[k, (iv - 1) % P, iu], c[k, iv, iu], c[k, (iv + 1) % P, iu])
    du = np.where(du > P / 2, du - P, du)
    dv = np.where(dv > P / 2, dv - P, dv)
    return best.numpy().astype(np.float64), du, dv


def _vertex(left: np.ndarray, mid: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Offset (-0.5..0.5) of the vertex of the parabola through three equally spaced
    values around a maximum ``mid``; 0 where it is flat or a neighbour is masked out."""
    den = left - 2.0 * mid + right
    ok = (den < -1e-9) & (left > -1.0) & (right > -1.0)
    off = np.where(ok, 0.5 * (left - right) / np.where(ok, den, -1.0), 0.0)
    return np.clip(off, -0.5, 0.5).astype(np.float64)


def _rotation_to(direction: np.ndarray) -> np.ndarray:
    """Rotation taking the camera axis (0, 0, 1) onto the unit ``direction`` (shortest)."""
    z = np.array([0.0, 0.0, 1.0])
    d = direction / np.linalg.norm(direction)
    v = np.cross(z, d)
    s, c = float(np.linalg.norm(v)), float(d @ z)
    if s < 1e-12:
        return np.eye(3)
    vx = np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]])
    return np.eye(3) + vx + vx @ vx * ((1 - c) / (s * s))


def match_pose(lib: DrrLibrary, view: int, K_x: np.ndarray, scale: float, spin_deg: float,
               du: float, dv: float) -> np.ndarray:
    """``T_cam_from_world`` of a match (see the module docstring)."""
    a = np.array([lib.f_px / float(K_x[0, 0]), lib.f_px / float(K_x[1, 1])]) * scale
    th = math.radians(spin_deg)
    Rs2 = np.array([[math.cos(th), -math.sin(th)], [math.sin(th), math.cos(th)]])
    off = Rs2 @ np.array([du, dv]) / a  # X-ray pixels from the principal point
    z = scale * lib.z_ref
    Xc = np.array([off[0] * z / float(K_x[0, 0]), off[1] * z / float(K_x[1, 1]), z])
    Rz = np.array([[math.cos(th), -math.sin(th), 0.0], [math.sin(th), math.cos(th), 0.0],
                   [0.0, 0.0, 1.0]])
    R = _rotation_to(Xc) @ Rz @ lib.poses[view][:3, :3]
    T = np.eye(4)
    T[:3, :3] = R
    T[:3, 3] = Xc - R @ lib.centre
    return T


def retrieve(lib: DrrLibrary, image: np.ndarray, valid: np.ndarray, K_x: np.ndarray,
             grid: LibraryGrid = LibraryGrid()) -> list[LibraryMatch]:
    """The best ``grid.top_k`` distinct library starts for an X-ray ``image`` (H, W) line
    integrals with ``valid`` mask and intrinsics ``K_x``, best first."""
    img = np.asarray(image, np.float32)
    val = np.asarray(valid, bool)
    sigma = grid.highpass_fraction * grid.match_px
    all_views = np.arange(len(lib.angles))

    def scored(views: np.ndarray, scales, spins) -> list[tuple[float, int, float, float, float, float]]:
        out = []
        for s in scales:
            for psi in spins:
                w, m = _warp_xray(img, val, K_x, lib, s, psi)
                w = _highpass(w, m, sigma)
                sc, du, dv = _masked_ncc(lib, views, w, m)
                out += [(float(sc[i]), int(v), s, psi, float(du[i]), float(dv[i]))
                        for i, v in enumerate(views)]
        return out

    coarse = scored(all_views, grid.coarse_scales, (0.0,))
    best_per_view: dict[int, float] = {}
    for sc, v, *_ in coarse:
        best_per_view[v] = max(best_per_view.get(v, -2.0), sc)
    top = sorted(best_per_view, key=lambda v: -best_per_view[v])[: grid.n_fine_views]
    fine = scored(np.asarray(top), grid.fine_scales, grid.spins_deg) + coarse
    fine.sort(key=lambda r: -r[0])
    kept: list[LibraryMatch] = []
    for sc, v, s, psi, du, dv in fine:
        lao, cran = lib.angles[v]
        if any(abs(lao - k.lao_deg) < grid.distinct_deg and abs(cran - k.cranial_deg)
               < grid.distinct_deg for k in kept):
            continue
        kept.append(LibraryMatch(sc, float(lao), float(cran), psi, s, (du, dv),
                                 match_pose(lib, v, K_x, s, psi, du, dv)))
        if len(kept) == grid.top_k:
            break
    return kept
