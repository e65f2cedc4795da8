"""One simulated X-ray of the synthetic bone CT, shared by the depth-search tests."""

from __future__ import annotations

import numpy as np
import torch

from geometry.camera import Camera
from geometry.carm import carm_pose
from registration.engine.drr import DrrRenderer
from simulation.phantom_ct import synthetic_bone_ct


def synthetic_view(samples_per_ray: int = 128) -> tuple[Camera, DrrRenderer, np.ndarray, torch.Tensor]:
    """(camera 80 x 80 px at SDD 1000 mm, renderer of a 48^3 CT at 4 mm, ``T_true``
    (``T_cam_from_world``, LAO 20 / cranial 10 deg, source 650 mm from the isocentre),
    the DRR (80, 80) at ``T_true``)."""
    vol = synthetic_bone_ct(48, 4.0)
    cam = Camera.from_geometry(80, 80, 1000.0, 3.6, 3.6)
    renderer = DrrRenderer(vol, bone_threshold_hu=200.0)
    T_true = carm_pose(20.0, 10.0, 650.0, [5.0, 0.0, 0.0])
    with torch.no_grad():
        img = renderer.render(torch.as_tensor(T_true[None], dtype=torch.float32),
                              torch.as_tensor(cam.K, dtype=torch.float32), 80, 80,
                              samples_per_ray=samples_per_ray)[0]
    return cam, renderer, T_true, img
