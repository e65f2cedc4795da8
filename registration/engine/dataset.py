"""On-the-fly training data for the per-patient scene-coordinate network.

Everything is simulated from the patient's own CT:

* poses sampled over clinical C-arm ranges (:class:`PoseSampler`): an AP family
  (LAO/RAO +-45 deg, cranial/caudal +-30 deg) and a lateral family (LAO/RAO 90 +- 15 deg),
  isocentre shifted by several cm around the bone, source-to-isocentre from the camera's
  source-to-detector distance;
* close-ups: a square sub-window of the detector (35-100 % of the larger side, possibly
  hanging over the detector edge, which becomes invalid padding) is rendered straight at
  the network size with the intrinsics shifted and scaled accordingly;
* realistic appearance (:func:`simulate_appearance`): photon noise, blur, scatter, gain,
  gamma and collimator shutters, applied per batch so that the noise-free renderings in
  the pool can be reused.

Targets per pixel: entry and exit bone-surface points in the normalised box frame
``(X_lps - centre) / scale`` and the bone mask.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from geometry.camera import Camera
from geometry.carm import carm_pose
from refusal import Refused


class NoBoneError(Refused):
    """The CT has no (or too little) bone above the threshold to train on."""


@dataclass(frozen=True)
class BoneBox:
    """Normalisation box of the CT's bone: ``centre`` (3,) LPS mm, ``half_extent`` (3,) mm,
    ``scale`` (mm) = the largest half extent; normalised = (X - centre) / scale."""

    centre: np.ndarray
    half_extent: np.ndarray

    @property
    def scale(self) -> float:
        return float(np.max(self.half_extent))

    def normalise(self, xyz: np.ndarray) -> np.ndarray:
        return (np.asarray(xyz, dtype=np.float64) - self.centre) / self.scale

    def denormalise(self, xyz: np.ndarray) -> np.ndarray:
        return np.asarray(xyz, dtype=np.float64) * self.scale + self.centre

    def to_json(self) -> dict:
        return {
            "centre_lps_mm": [float(x) for x in self.centre],
            "half_extent_mm": [float(x) for x in self.half_extent],
            "scale_mm": self.scale,
        }


def bone_points(
    volume, threshold_hu: float, max_points: int = 200_000, seed: int = 0
) -> np.ndarray:
    """LPS mm positions (N, 3) of (a random subset of) voxels above ``threshold_hu``."""
    from registration.engine.drr_volume import voxel_centres_lps

    return voxel_centres_lps(np.asarray(volume.array) > threshold_hu, volume.affine,
                             max_points, seed)


def bone_box(volume, threshold_hu: float = 200.0, min_voxels: int = 50) -> BoneBox:
    """Robust bounding box (0.5-99.5 percentiles) of the CT's bone voxels, in LPS mm."""
    pts = bone_points(volume, threshold_hu)
    if len(pts) < min_voxels:
        raise NoBoneError(
            f"the CT has no bone: only {len(pts)} voxels above {threshold_hu:g} HU "
            f"(need >= {min_voxels})"
        )
    lo = np.percentile(pts, 0.5, axis=0)
    hi = np.percentile(pts, 99.5, axis=0)
    half = np.maximum((hi - lo) / 2.0, 5.0)
    return BoneBox(centre=(lo + hi) / 2.0, half_extent=half)


@dataclass
class PoseRanges:
    lao_ap_deg: float = 45.0
    cranial_deg: float = 30.0
    lateral_prob: float = 0.3
    lateral_spread_deg: float = 15.0
    in_plane_deg: float = 10.0
    iso_shift_mm: float = 50.0
    sid_fraction: tuple[float, float] = (0.55, 0.75)


class PoseSampler:
    """Random clinical C-arm poses around a bone box for one camera."""

    def __init__(self, box: BoneBox, camera: Camera, ranges: PoseRanges | None = None) -> None:
        self.box = box
        self.camera = camera
        self.r = ranges or PoseRanges()

    def sample(self, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
        r = self.r
        if rng.random() < r.lateral_prob:
            lao = float(
                rng.choice([-90.0, 90.0]) + rng.uniform(-r.lateral_spread_deg, r.lateral_spread_deg)
            )
            cran = float(rng.uniform(-r.lateral_spread_deg, r.lateral_spread_deg))
        else:
            lao = float(rng.uniform(-r.lao_ap_deg, r.lao_ap_deg))
            cran = float(rng.uniform(-r.cranial_deg, r.cranial_deg))
        shift = rng.uniform(-1.0, 1.0, 3) * np.minimum(self.box.half_extent, r.iso_shift_mm)
        iso = self.box.centre + shift
        sid = float(rng.uniform(*r.sid_fraction) * self.camera.source_to_detector_mm)
        inplane = float(rng.uniform(-r.in_plane_deg, r.in_plane_deg))
        T = carm_pose(lao, cran, sid, iso, in_plane_deg=inplane)
        return T, {
            "lao_deg": lao,
            "cranial_deg": cran,
            "sid_mm": sid,
            "isocenter_lps": iso.tolist(),
        }


def window_camera(camera: Camera, u0: float, v0: float, side: float, size: int) -> Camera:
    """Camera of a square detector window (top-left pixel-edge corner at ``(u0, v0)``,
    ``side`` pixels wide, in the full image's pixel units) resampled to ``size`` pixels
    (:meth:`geometry.camera.Camera.window`)."""
    return camera.window(u0, v0, side, side, size, size)


def window_valid_mask(camera: Camera, u0: float, v0: float, side: float, size: int) -> np.ndarray:
    """(size, size) bool: window pixels whose centre lies on the real detector."""
    c = (np.arange(size) + 0.5) * side / size + np.array([[u0], [v0]]) - 0.5
    vu = (c[0] >= -0.5) & (c[0] <= camera.width - 0.5)
    vv = (c[1] >= -0.5) & (c[1] <= camera.height - 0.5)
    return vv[:, None] & vu[None, :]


def sample_window(
    camera: Camera, rng: np.random.Generator, closeup_prob: float = 0.5, min_fraction: float = 0.35
) -> tuple[float, float, float]:
    """Random square window ``(u0, v0, side)``: the padded full view, or a close-up."""
    big = float(max(camera.width, camera.height))
    if rng.random() >= closeup_prob:
        return (camera.width - big) / 2.0, (camera.height - big) / 2.0, big
    side = float(rng.uniform(min_fraction, 0.9) * big)
    cu = rng.uniform(0.15, 0.85) * camera.width
    cv = rng.uniform(0.15, 0.85) * camera.height
    return cu - side / 2.0, cv - side / 2.0, side


@dataclass
class _SceneCoords:
    entry: np.ndarray
    exit: np.ndarray
    mask: np.ndarray


def _sample_volume(vol: torch.Tensor, pts: torch.Tensor) -> torch.Tensor:
    """Trilinear samples ``(R, S)`` of ``vol`` (1, 1, k, j, i) at normalised grid points
    ``pts`` (R, S, 3), zero outside. On a CPU the rays are split into one batch item per
    thread over the same (expanded, not copied) volume: the 3-D sampler works through a
    batch item on one thread (4096 x 192 samples of a CT: 188 ms in one item, 108 ms in
    two on 2 cores; identical values)."""
    R, S = pts.shape[:2]
    nb = 1 if vol.device.type != "cpu" else max(1, min(torch.get_num_threads(), R))
    per = -(-R // nb)
    if per * nb > R:  # pad with copies of the last ray, dropped below
        pts = torch.cat([pts, pts[-1:].expand(per * nb - R, -1, -1)])
    out = F.grid_sample(vol.expand(nb, -1, -1, -1, -1), pts.reshape(nb, per, S, 1, 3),
                        mode="bilinear", padding_mode="zeros", align_corners=True)
    return out.reshape(nb * per, S)[:R]


def march_scene_coordinates(renderer, camera: Camera, T: np.ndarray, n_samples: int = 192) -> _SceneCoords:
    """Fast entry/exit bone points for training targets (LPS mm, NaN off bone).

    Samples the renderer's trilinear attenuation at ``n_samples`` points along each pixel
    ray inside the bone box and finds the first/last crossing of the bone threshold's
    attenuation (``mu`` is linear in HU above 0 HU, so this is the trilinear HU
    iso-surface), refined by linear interpolation between the bracketing samples. About
    10x faster than :func:`registration.engine.scene_coords.scene_coordinates` on a CPU at
    a precision of a fraction of the sample step (bone-box diagonal / ``n_samples``).
    """
    from registration.engine.attenuation import hu_to_mu

    H, W = camera.height, camera.width
    box = renderer._box[True]
    if box is None:
        nan = np.full((H, W, 3), np.nan)
        return _SceneCoords(nan, nan.copy(), np.zeros((H, W), bool))
    o, d, _, _, _ = renderer.rays_normalised(torch.as_tensor(T, dtype=renderer.dtype),
                                             torch.as_tensor(camera.K, dtype=renderer.dtype), H, W)
    lo, hi = box
    o, d = o[0], d[0]
    d_safe = torch.where(d.abs() < 1e-12, torch.full_like(d, 1e-12), d)
    t1, t2 = (lo - o) / d_safe, (hi - o) / d_safe
    tn = torch.minimum(t1, t2).amax(-1).clamp_min(0)
    tf = torch.maximum(t1, t2).amin(-1)
    hit = tf > tn
    step = (tf - tn).clamp_min(0) / n_samples
    frac = torch.arange(n_samples, dtype=d.dtype) + 0.5
    tt = tn[:, None] + frac[None] * step[:, None]
    mu_thr = float(hu_to_mu(np.array([renderer.bone_threshold_hu], np.float32))[0])
    vals = []
    chunk = max(1, (1 << 21) // n_samples)
    for s0 in range(0, len(tt), chunk):
        sl = slice(s0, s0 + chunk)
        vals.append(_sample_volume(renderer._mu, o + tt[sl, :, None] * d[sl, None, :]))
    f = torch.cat(vals) - mu_thr  # (R, S), >= 0 inside bone
    inside = (f >= 0) & hit[:, None]
    any_in = inside.any(1)
    first = torch.argmax(inside.int(), dim=1)
    last = n_samples - 1 - torch.argmax(inside.flip(1).int(), dim=1)
    r = torch.arange(len(tt))

    def crossing(i_in: torch.Tensor, i_out: torch.Tensor) -> torch.Tensor:
        ok = (i_out >= 0) & (i_out < n_samples)
        i_o = i_out.clamp(0, n_samples - 1)
        fi, fo = f[r, i_in], f[r, i_o]
        w = torch.where(ok & (fi - fo > 1e-12), fi / (fi - fo).clamp_min(1e-12), torch.zeros_like(fi))
        return tt[r, i_in] + w.clamp(0, 1) * (tt[r, i_o] - tt[r, i_in])

    t_in = crossing(first, first - 1)
    t_out = crossing(last, last + 1)
    src, dirs = pixel_rays_np(camera, T)
    mask = any_in.cpu().numpy().reshape(H, W)
    m = mask.reshape(-1, 1)
    ent = np.where(m, src + t_in.double().cpu().numpy()[:, None] * dirs, np.nan).reshape(H, W, 3)
    ext = np.where(m, src + t_out.double().cpu().numpy()[:, None] * dirs, np.nan).reshape(H, W, 3)
    return _SceneCoords(ent, ext, mask)


def pixel_rays_np(camera: Camera, T: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Source (3,) and unit world directions (H*W, 3) of every pixel (t in mm)."""
    from geometry.camera import pixel_rays

    src, dirs = pixel_rays(camera, np.asarray(T, dtype=np.float64))
    return np.asarray(src), np.asarray(dirs).reshape(-1, 3)


@dataclass
class Sample:
    """One noise-free training sample at the network size."""

    drr: np.ndarray  # (S, S) float32 line integral
    coords: np.ndarray  # (6, S, S) float32 normalised entry/exit (0 off bone)
    mask: np.ndarray  # (S, S) bool, ray crosses bone
    valid: np.ndarray  # (S, S) bool, pixel on the detector
    T_cam_from_world: np.ndarray
    K: np.ndarray


class SampleGenerator:
    """Renders training samples (DRR + scene coordinates) from one CT."""

    def __init__(
        self,
        volume,
        camera: Camera,
        box: BoneBox,
        size: int,
        *,
        bone_threshold_hu: float = 200.0,
        samples_per_ray: int = 96,
        device: str = "cpu",
        ranges: PoseRanges | None = None,
        closeup_prob: float = 0.5,
    ) -> None:
        from registration.engine.drr import DrrRenderer

        self.volume = volume
        self.camera = camera
        self.box = box
        self.size = int(size)
        self.threshold = float(bone_threshold_hu)
        self.samples_per_ray = int(samples_per_ray)
        self.device = device
        self.sampler = PoseSampler(box, camera, ranges)
        self.closeup_prob = closeup_prob
        self.renderer = DrrRenderer(volume, device=device, bone_threshold_hu=bone_threshold_hu)

    def scene(self, cam: Camera, T: np.ndarray) -> _SceneCoords:
        return march_scene_coordinates(self.renderer, cam, T)

    def make(
        self, rng: np.random.Generator, min_bone_fraction: float = 0.02, tries: int = 6
    ) -> Sample:
        for _ in range(tries):
            T, _info = self.sampler.sample(rng)
            u0, v0, side = sample_window(self.camera, rng, self.closeup_prob)
            cam = window_camera(self.camera, u0, v0, side, self.size)
            valid = window_valid_mask(self.camera, u0, v0, side, self.size)
            sc = self.scene(cam, T)
            mask = np.asarray(sc.mask, dtype=bool) & valid
            if mask.mean() >= min_bone_fraction:
                break
        with torch.no_grad():
            drr = (
                self.renderer.render(
                    torch.as_tensor(T[None], dtype=torch.float32, device=self.device),
                    torch.as_tensor(cam.K, dtype=torch.float32, device=self.device),
                    self.size,
                    self.size,
                    samples_per_ray=self.samples_per_ray,
                )[0]
                .float()
                .cpu()
                .numpy()
            )
        entry = self.box.normalise(np.asarray(sc.entry, dtype=np.float64).reshape(-1, 3))
        exit_ = self.box.normalise(np.asarray(sc.exit, dtype=np.float64).reshape(-1, 3))
        coords = np.concatenate([entry, exit_], axis=1).reshape(self.size, self.size, 6)
        coords = np.where(mask[..., None], np.nan_to_num(coords), 0.0).transpose(2, 0, 1)
        drr = np.where(valid, drr, 0.0)
        return Sample(
            drr.astype(np.float32), coords.astype(np.float32), mask, valid, T, cam.K.copy()
        )


@dataclass
class AppearanceParams:
    """Ranges of the X-ray appearance simulation (a different setting is used for testing)."""

    photons: tuple[float, float] = (3e3, 1e5)  # photons per pixel in air
    mu_scale: tuple[float, float] = (0.6, 1.4)  # overall attenuation / kVp contrast
    scatter: tuple[float, float] = (0.0, 0.15)  # fraction of mean primary
    blur_px: tuple[float, float] = (0.0, 1.2)  # Gaussian sigma (pixels of the network image)
    gamma: tuple[float, float] = (0.8, 1.25)
    collimator_prob: float = 0.3
    circle_prob: float = 0.25  # image-intensifier circular field
    heel: tuple[float, float] = (0.0, 0.15)


def _gauss_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    if sigma < 0.3:
        return x
    r = max(1, int(math.ceil(2.5 * sigma)))
    t = torch.arange(-r, r + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    y = F.pad(x[None, None], (r, r, r, r), mode="replicate")
    y = F.conv2d(y, k.view(1, 1, 1, -1))
    y = F.conv2d(y, k.view(1, 1, -1, 1))
    return y[0, 0]


def simulate_appearance(
    drr: torch.Tensor,
    valid: torch.Tensor,
    rng: np.random.Generator,
    p: AppearanceParams | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Turn a noise-free line integral ``(H, W)`` into a realistic X-ray line integral.

    Beer-Lambert intensity with a heel-effect gradient, scatter, Gaussian blur, Poisson
    photon noise, ``-log`` back to line-integral form, a gamma / gain change, and an
    optional rectangular collimator (outside set to 0 and marked invalid).
    Returns ``(image, valid)``.
    """
    p = p or AppearanceParams()
    H, W = drr.shape
    mu = float(rng.uniform(*p.mu_scale))
    li = drr.clamp_min(0) * mu
    I0 = float(math.exp(rng.uniform(math.log(p.photons[0]), math.log(p.photons[1]))))
    ramp = torch.linspace(-1, 1, W if rng.random() < 0.5 else H, device=drr.device)
    heel = 1.0 + float(rng.uniform(*p.heel)) * ramp
    heel = heel[None, :] if heel.numel() == W else heel[:, None]
    intensity = I0 * heel * torch.exp(-li)
    intensity = intensity + float(rng.uniform(*p.scatter)) * intensity.mean()
    intensity = _gauss_blur(intensity, float(rng.uniform(*p.blur_px)))
    gen = torch.Generator(device="cpu").manual_seed(int(rng.integers(2**31)))
    noisy = torch.poisson(intensity.clamp_min(0).cpu(), generator=gen).to(drr.device)
    out = -torch.log(noisy.clamp_min(0.5) / I0)
    lo = out.min()
    out = (out - lo).clamp_min(0)
    out = out ** float(rng.uniform(*p.gamma))
    valid = valid.clone()
    if rng.random() < p.collimator_prob:
        m = rng.uniform(0.0, 0.18, 4)
        r0, r1 = int(m[0] * H), H - int(m[1] * H)
        c0, c1 = int(m[2] * W), W - int(m[3] * W)
        coll = torch.zeros_like(valid)
        coll[r0:r1, c0:c1] = True
        valid = valid & coll
    if rng.random() < p.circle_prob:
        yy, xx = torch.meshgrid(torch.arange(H, dtype=torch.float32), torch.arange(W, dtype=torch.float32),
                                indexing="ij")
        rad = float(rng.uniform(0.4, 0.6)) * min(H, W)
        cy, cx = (H - 1) / 2 + rng.uniform(-0.1, 0.1) * H, (W - 1) / 2 + rng.uniform(-0.1, 0.1) * W
        valid = valid & (((yy - cy) ** 2 + (xx - cx) ** 2) <= rad * rad)
    out = torch.where(valid, out, torch.zeros_like(out))
    return out, valid
