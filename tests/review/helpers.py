"""Shared builders for the registration site and review tests: a tiny synthetic CT study,
simulated X-rays with ground truth, and finished registration rows with pictures."""

from __future__ import annotations

import cv2
import numpy as np
import torch
from django.core.files.base import ContentFile

# the quick preset shrunk for tests (read by registration.engine.training.get_preset)
# 40 steps: enough for the tiny network's bone mask to agree with the CT (the pipeline's
# self-check compares the two), still about a second of training.
TINY_TRAINING = {
    "ORTHOFUSE_TRAIN_STEPS": "40",
    "ORTHOFUSE_TRAIN_POOL": "4",
    "ORTHOFUSE_TRAIN_SIZE": "32",
    "ORTHOFUSE_TRAIN_BATCH": "2",
}
SIZE = 64
SPACING_MM = 3.6
SDD_MM = 1000.0
SIP_MM = 650.0


def tiny_volume(bone: bool = True):
    from simulation.phantom_ct import synthetic_bone_ct

    return synthetic_bone_ct(32, 6.0, bone=bone)


def tiny_study(patient, *, bone: bool = True):
    """A ready CT study holding the 32^3 synthetic bone CT (6 mm voxels, centred at 0)."""
    from webapp.records.models import CTStudy
    from webapp.records.volume_store import save_volume

    study = CTStudy(
        patient=patient,
        description="synthetic bone CT" if bone else "soft tissue only",
        status=CTStudy.Status.READY,
    )
    save_volume(study, tiny_volume(bone))
    study.save()
    return study


def camera():
    from geometry.camera import Camera

    return Camera.from_geometry(SIZE, SIZE, SDD_MM, SPACING_MM, SPACING_MM)


def true_pose(primary: float = 10.0, secondary: float = 5.0, iso=(0.0, 0.0, 0.0)) -> np.ndarray:
    from geometry.carm import carm_pose

    return carm_pose(primary, secondary, SIP_MM, list(iso))


def png16(image: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", np.clip(image, 0, 65535).astype(np.uint16))
    assert ok
    return buf.tobytes()


def simulated_xray(
    patient,
    *,
    primary: float = 10.0,
    secondary: float = 5.0,
    blank: bool = False,
    description: str = "simulated AP",
    volume=None,
):
    """A 64x64 16-bit PNG X-ray of the tiny CT (bone dark, as a C-arm stores it) with the
    header geometry and the true pose as ground truth."""
    from registration.engine.drr import DrrRenderer
    from webapp.records.models import XrayImage

    T = true_pose(primary, secondary)
    if blank:
        pixels = np.full((SIZE, SIZE), 20000.0)
    else:
        renderer = DrrRenderer(
            volume if volume is not None else tiny_volume(), bone_threshold_hu=200.0
        )
        with torch.no_grad():
            li = renderer.render(
                torch.as_tensor(T[None], dtype=torch.float32),
                torch.as_tensor(camera().K, dtype=torch.float32),
                SIZE,
                SIZE,
                samples_per_ray=96,
            )[0].numpy()
        pixels = 60000.0 * np.exp(-li)
    xray = XrayImage(
        patient=patient,
        description=description,
        file_format=XrayImage.Format.PNG,
        rows=SIZE,
        cols=SIZE,
        bits_stored=16,
        photometric_interpretation="MONOCHROME2",
        distance_source_to_detector_mm=SDD_MM,
        distance_source_to_patient_mm=SIP_MM,
        pixel_spacing_x_mm=SPACING_MM,
        pixel_spacing_y_mm=SPACING_MM,
        primary_angle_deg=primary,
        secondary_angle_deg=secondary,
        ground_truth={"T_cam_from_world": T.tolist(), "camera": camera().to_json()},
    )
    xray.original_file.save("sim.png", ContentFile(png16(pixels)), save=False)
    xray.save()
    return xray


def finished_registration(
    xray, study, *, T=None, status="ok", true_mtre=0.8, seconds=1.5, pictures=True, created_by=None
):
    """A finished Registration row (as the job leaves it) with overlay/DRR pictures."""
    from registration.engine.overlay import overlay_png
    from webapp.xray_registration.models import Registration

    T = true_pose() if T is None else T
    reg = Registration(
        xray=xray,
        study=study,
        status=status,
        message="registered: 30/40 inliers"
        if status == "ok"
        else "network: no bone recognised in the image",
        T_cam_from_world=T.tolist() if status == "ok" else None,
        camera=camera().to_json(),
        quality={"true_mtre_mm": true_mtre} if status == "ok" else {},
        stages={
            "network": {"seconds": 0.05},
            "pnp": {"seconds": 0.01},
            "refine": {"seconds": seconds - 0.06},
        },
        seconds=seconds,
        n_correspondences=40,
        n_inliers=30,
        similarity=0.9,
        created_by=created_by,
    )
    if pictures and status == "ok":
        rng = np.random.default_rng(0)
        image = rng.normal(1000, 50, (SIZE, SIZE))
        edges = np.zeros((SIZE, SIZE), bool)
        edges[20:44, 30] = True
        reg.overlay_file.save(
            "overlay.png", ContentFile(overlay_png(image, edges, opacity=1.0)), save=False
        )
        reg.drr_file.save(
            "drr.png", ContentFile(overlay_png(image, np.zeros_like(edges))), save=False
        )
    reg.save()
    return reg
