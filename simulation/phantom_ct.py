"""Small synthetic CT volumes with asymmetric 'bones', for tests and demos (no Django).

The volume is in HU on an axis-aligned LPS grid: ``array`` (k, j, i), ``affine`` with the
given isotropic ``spacing_mm`` and the volume centred on the world origin.
"""

from __future__ import annotations

import numpy as np


def synthetic_bone_ct(n: int = 48, spacing_mm: float = 4.0, *, bone: bool = True, seed: int = 0):
    """A soft-tissue ellipsoid in air with an asymmetric set of bone shapes.

    Bones (when ``bone``): a bent hollow tube (cortex 1300 HU, marrow 250 HU), an
    off-centre ball, and an oblique rod, so that every view has a unique pose.
    """
    from dicomio.volume import CTVolume

    rng = np.random.default_rng(seed)
    idx = (np.arange(n) - (n - 1) / 2.0) * spacing_mm
    z, y, x = np.meshgrid(idx, idx, idx, indexing="ij")  # k -> z, j -> y, i -> x
    r = n * spacing_mm / 2.0
    hu = np.full((n, n, n), -1000.0, dtype=np.float32)
    body = (x / (0.9 * r)) ** 2 + (y / (0.7 * r)) ** 2 + (z / (0.95 * r)) ** 2 <= 1.0
    hu[body] = 40.0
    if bone:
        # bent tube: centre line x = 0.35 r sin(z / r), y = -0.1 r
        cx = 0.35 * r * np.sin(1.3 * z / r) - 0.15 * r
        d = np.sqrt((x - cx) ** 2 + (y + 0.1 * r) ** 2)
        inner, outer = 0.08 * r, 0.17 * r
        along = np.abs(z) < 0.75 * r
        hu[(d < inner) & along] = 250.0
        hu[(d >= inner) & (d < outer) & along] = 1300.0
        # ball
        ball = (x - 0.45 * r) ** 2 + (y - 0.15 * r) ** 2 + (z - 0.35 * r) ** 2 < (0.18 * r) ** 2
        hu[ball] = 900.0
        # oblique rod from (0.3r, 0.2r, -0.5r) towards (-0.1r, -0.3r, 0.0)
        p0 = np.array([0.3 * r, 0.25 * r, -0.55 * r])
        p1 = np.array([0.55 * r, -0.35 * r, -0.05 * r])
        dvec = (p1 - p0) / np.linalg.norm(p1 - p0)
        rel = np.stack([x - p0[0], y - p0[1], z - p0[2]], -1)
        t = np.clip(rel @ dvec, 0, np.linalg.norm(p1 - p0))
        dist = np.linalg.norm(rel - t[..., None] * dvec, axis=-1)
        hu[dist < 0.07 * r] = 1100.0
    hu += rng.normal(0, 10.0, hu.shape).astype(np.float32) * body
    affine = np.eye(4)
    affine[:3, :3] *= spacing_mm
    affine[:3, 3] = -(n - 1) / 2.0 * spacing_mm
    return CTVolume(hu, affine, {"synthetic": True})
