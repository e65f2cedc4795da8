"""Anatomy laid over the simulated phantom frames of ``bench_calibration``: DRRs of the
shared real pelvis CT when the renderer and the data exist, else synthetic anatomy."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from simulation.phantom_frames import synthetic_anatomy


def orbit_pose(angle_deg: float, sod_mm: float) -> np.ndarray:
    """T_cam_from_world (mm) of a C-arm orbiting about the world z axis around the origin,
    the source ``sod_mm`` from it, at ``angle_deg``."""
    a = np.deg2rad(angle_deg)
    z = np.array([np.sin(a), np.cos(a), 0.0])  # viewing direction (source -> detector)
    y = np.array([0.0, 0.0, -1.0])
    x = np.cross(y, z)
    r_wc = np.column_stack([x, y, z])
    centre = -sod_mm * z
    t = np.eye(4)
    t[:3, :3] = r_wc.T
    t[:3, 3] = -r_wc.T @ centre
    return t


def _pelvis_drrs(size: int, ct_dir: Path | None) -> tuple[list[np.ndarray], str]:
    from dicomio.ct import load_nifti
    from geometry.camera import Camera
    from registration.engine.drr import DrrRenderer

    if ct_dir is None:
        raise FileNotFoundError("no shared CT folder given")
    path = Path(ct_dir) / "abdomen_pelvis_totalseg.nii.gz"
    if not path.exists():
        raise FileNotFoundError(str(path))
    vol = load_nifti(path)
    centre = vol.voxel_to_world(np.array([(np.array(vol.shape[::-1]) - 1) / 2.0]))[0]
    n = 256
    cam = Camera.from_geometry(n, n, 1000.0, 1.0, 1.0)
    renderer = DrrRenderer(vol)
    out = []
    for ang in (0.0, 25.0, -30.0):
        t = orbit_pose(ang, 600.0)
        # the orbit is about the world origin: move it to the volume centre
        shift = np.eye(4)
        shift[:3, 3] = -centre
        drr = renderer.render_numpy(cam, t @ shift, samples_per_ray=128)
        drr = drr - float(np.percentile(drr, 2))  # automatic exposure control: gain
        out.append(cv2.resize(drr.astype(np.float32), (size, size)))
    return out, f"real pelvis DRR (registration.engine.drr.DrrRenderer, {path.name})"


def pelvis_anatomy(
    size: int, log: Callable[[str], object], *, ct_dir: Path | None = None
) -> tuple[list[np.ndarray], str]:
    """Three ``size``^2 anatomy images and where they come from: DRRs of the real pelvis CT
    in ``ct_dir`` (the shared data's ``ct`` folder), or synthetic anatomy (said through
    ``log``) when that fails."""
    try:
        return _pelvis_drrs(size, ct_dir)
    except Exception as exc:  # noqa: BLE001 - any failure falls back, and says so
        log(f"note: pelvis DRR unavailable ({type(exc).__name__}: {exc}); synthetic anatomy used")
        return [
            synthetic_anatomy(size, size, rng=k) for k in range(3)
        ], "synthetic anatomy (fallback)"
