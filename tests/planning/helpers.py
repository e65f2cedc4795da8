"""Synthetic two-view fixtures for planning tests: a C-arm, X-ray rows with PNG images of
a bead phantom rendered through known poses (geometry.carm.carm_pose)."""

from __future__ import annotations

import cv2
import numpy as np
from django.core.files.base import ContentFile

from geometry.camera import Camera
from geometry.carm import carm_pose

SIZE = 320  # pixels
SPACING = 1.0  # mm per detector pixel
SDD = 1000.0
SID = 600.0  # source to isocentre
BEADS = np.array(
    [[0, 0, 0], [40, 0, 0], [0, 40, 0], [0, 0, 40], [-30, 20, -25], [25, -30, 35]], dtype=float
)


def camera() -> Camera:
    return Camera.from_geometry(SIZE, SIZE, SDD, SPACING, SPACING)


def pose(lao: float, cranial: float = 0.0) -> np.ndarray:
    return carm_pose(lao, cranial, SID, (0.0, 0.0, 0.0))


def render_png(T: np.ndarray) -> bytes:
    """A 16-bit PNG: dark background with bright disks at the projected beads."""
    cam = camera()
    img = np.full((SIZE, SIZE), 4000, np.uint16)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    img += (2000 * np.exp(-((xx - SIZE / 2) ** 2 + (yy - SIZE / 2) ** 2) / (2 * 90.0**2))).astype(
        np.uint16
    )
    x_cam = BEADS @ T[:3, :3].T + T[:3, 3]
    uv = (x_cam @ cam.K.T)[:, :2] / (x_cam @ cam.K.T)[:, 2:3]
    for u, v in uv:
        cv2.circle(img, (int(round(u)), int(round(v))), 5, 30000, -1)
    ok, buf = cv2.imencode(".png", img)
    assert ok
    return buf.tobytes()


def make_carm(name: str = "Test C-arm"):
    from webapp.records.models import CArm

    return CArm.objects.create(
        name=name,
        detector_type=CArm.DetectorType.FLAT_PANEL,
        detector_width_px=SIZE,
        detector_height_px=SIZE,
        pixel_spacing_x_mm=SPACING,
        pixel_spacing_y_mm=SPACING,
        source_to_detector_mm=SDD,
    )


def make_xray(patient, carm, lao: float, cranial: float = 0.0, description: str = ""):
    from webapp.records.models import XrayImage

    xray = XrayImage(
        patient=patient,
        carm=carm,
        description=description or f"LAO {lao:g}",
        file_format=XrayImage.Format.PNG,
        rows=SIZE,
        cols=SIZE,
        bits_stored=16,
        distance_source_to_detector_mm=SDD,
        distance_source_to_patient_mm=SID,
        pixel_spacing_x_mm=SPACING,
        pixel_spacing_y_mm=SPACING,
        primary_angle_deg=lao,
        secondary_angle_deg=cranial,
    )
    xray.original_file.save("view.png", ContentFile(render_png(pose(lao, cranial))), save=False)
    xray.save()
    return xray


def project(T: np.ndarray, points: np.ndarray) -> np.ndarray:
    cam = camera()
    x_cam = np.asarray(points, float).reshape(-1, 3) @ T[:3, :3].T + T[:3, 3]
    h = x_cam @ cam.K.T
    return h[:, :2] / h[:, 2:3]


def picks_for(entry: np.ndarray, target: np.ndarray, T1: np.ndarray, T2: np.ndarray) -> dict:
    uv1 = project(T1, np.stack([entry, target]))
    uv2 = project(T2, np.stack([entry, target]))
    return {
        "entry": {"view1": uv1[0].tolist(), "view2": uv2[0].tolist()},
        "target": {"view1": uv1[1].tolist(), "view2": uv2[1].tolist()},
    }
