"""Simulated intra-operative C-arm shots: a DRR of the patient's CT seen through a clip-on
calibration phantom and an image-intensifier distortion (no Django).

The anatomy is a DRR rendered with the pinhole camera of the phantom simulator's
geometry (source ``S`` in the detector frame, ``K`` from it), so the *dewarped* shot is
that DRR plus the beads, and the true ``T_cam_from_world`` is known exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from calibration.engine.phantom import Phantom
from geometry.camera import Camera
from registration.engine.drr import DrrRenderer
from simulation.phantom_frames import IIDistortion, SimGeometry, simulate_phantom_image


@dataclass
class CarmShot:
    """``pixels`` (H, W) uint16 stored image (MONOCHROME2: bright where unattenuated),
    ``camera`` the dewarped pinhole camera, ``T_cam_from_world`` the true pose."""

    pixels: np.ndarray
    camera: Camera
    T_cam_from_world: np.ndarray
    bone_fraction: float


def camera_of(geometry: SimGeometry) -> Camera:
    """The pinhole camera of a simulator geometry (source ``S`` in the detector frame)."""
    sx, sy = geometry.spacing
    K = geometry.K
    return Camera.from_geometry(
        geometry.width,
        geometry.height,
        -geometry.source_mm[2],
        sx,
        sy,
        cx=float(K[0, 2]),
        cy=float(K[1, 2]),
    )


def simulate_carm_shot(
    renderer: DrrRenderer,
    T_cam_from_world: np.ndarray,
    phantom: Phantom,
    geometry: SimGeometry,
    distortion: IIDistortion,
    *,
    rng: np.random.Generator | int | None = 0,
    samples_per_ray: int = 256,
    noise: float = 0.01,
    target_level: float = 12000.0,
) -> CarmShot:
    """Render one distorted C-arm image of the CT behind the phantom.

    Exposure follows an automatic brightness control: the source intensity is chosen so
    the median transmitted signal over the anatomy is ``target_level`` (16-bit counts);
    unattenuated areas may saturate at 65535 as on a real detector.
    """
    camera = camera_of(geometry)
    drr = renderer.render_numpy(camera, T_cam_from_world, samples_per_ray=samples_per_ray)
    bone = renderer.render_numpy(camera, T_cam_from_world, samples_per_ray=64, bone_only=True)
    transmission = float(np.median(np.exp(-drr[drr > 0.05]))) if np.any(drr > 0.05) else 1.0
    i0 = target_level / max(transmission, 1e-4)
    sim = simulate_phantom_image(
        phantom, geometry, distortion, rng=rng, anatomy=drr, noise=noise, i0=i0,
        fov_radius_mm=distortion.radius_mm,
    )
    image = sim.image.astype(np.float64)
    # Outside the intensifier's circular field the detector sees nothing: dark border.
    vv, uu = np.mgrid[0 : geometry.height, 0 : geometry.width]
    outside = np.hypot(uu - sim.fov_centre_px[0], vv - sim.fov_centre_px[1]) > sim.fov_radius_px
    image[outside] = 0.05 * float(np.percentile(image[~outside], 5))
    pixels = np.clip(np.round(image), 0, 65535).astype(np.uint16)
    return CarmShot(
        pixels=pixels,
        camera=camera,
        T_cam_from_world=np.asarray(T_cam_from_world, dtype=np.float64),
        bone_fraction=float((bone > 0.05).mean()),
    )
