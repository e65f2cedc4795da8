"""Rows for the send tests: a patient, a CT, a DICOM X-ray, a successful registration with
an overlay and landmarks, a plan version in the CT's frame."""

from __future__ import annotations

import io

import cv2
import numpy as np
from django.core.files.base import ContentFile

from registration.engine.overlay import overlay_png
from tests.core.factories import make_study, make_xray
from tests.dicomio.synth import xray_dataset
from webapp.planning.models import Plan, PlanVersion
from webapp.records.models import Patient, XrayImage
from webapp.xray_registration.models import LandmarkPair, Registration

ROWS, COLS = 48, 64
EDGE_ROW = 20


def make_patient(mrn: str = "SEND-1") -> Patient:
    return Patient.objects.create(mrn=mrn, family_name="Doe", given_name="Jane", sex="F")


def dicom_xray(patient: Patient, seed: int = 0) -> tuple[XrayImage, object]:
    """An X-ray stored as DICOM (its header names ``patient``); returns (row, data set)."""
    pixels = np.random.default_rng(seed).integers(0, 4000, (ROWS, COLS)).astype(np.uint16)
    ds = xray_dataset(pixels)
    ds.PatientID = patient.mrn
    ds.PatientName = "Doe^Jane"
    ds.StudyDate, ds.StudyTime = "20261207", "101500"
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    xray = XrayImage(patient=patient, file_format=XrayImage.Format.DICOM, rows=ROWS, cols=COLS,
                     bits_stored=12, sop_instance_uid=str(ds.SOPInstanceUID), modality="XA",
                     pixel_spacing_x_mm=0.3, pixel_spacing_y_mm=0.2)
    xray.original_file.save("xray.dcm", ContentFile(buffer.getvalue()), save=False)
    xray.save()
    return xray, ds


def pose() -> list[list[float]]:
    T = np.eye(4)
    T[:3, :3] = cv2.Rodrigues(np.array([0.0, 0.0, np.radians(30.0)]))[0]
    T[:3, 3] = [5.0, -3.0, 800.0]
    return T.tolist()


def registration(patient: Patient, *, png: bool = False, seed: int = 0) -> Registration:
    """A successful registration whose overlay has one green edge row at ``EDGE_ROW``."""
    xray = make_xray(patient, rows=ROWS, cols=COLS) if png else dicom_xray(patient, seed)[0]
    reg = Registration.objects.create(
        xray=xray, study=make_study(patient), status="ok", T_cam_from_world=pose(),
        similarity=0.87, quality={"true_mtre_mm": 0.42}, n_inliers=41, n_correspondences=50,
    )
    edges = np.zeros((ROWS, COLS), bool)
    edges[EDGE_ROW, 5:60] = True
    grey = np.random.default_rng(1).normal(size=(ROWS, COLS))
    reg.overlay_file.save("overlay.png", ContentFile(overlay_png(grey, edges, opacity=1.0)))
    LandmarkPair.objects.create(registration=reg, u_px=10.0, v_px=12.0, x_mm=1.0, y_mm=2.0,
                                z_mm=3.0, error_px=0.8, error_mm_at_detector=0.16)
    return reg


def plan_version(patient: Patient, study=None) -> PlanVersion:
    """Version 1 of a plan on two DICOM views with one complete trajectory in CT LPS."""
    study = study or make_study(patient)
    x1, _ = dicom_xray(patient, 1)
    x2, _ = dicom_xray(patient, 2)
    plan = Plan.objects.create(patient=patient, name="SI screw", xray1=x1, xray2=x2)
    trajectory = {
        "name": "S1 left", "colour": "#ff8800", "diameter_mm": 7.3, "length_mm": 45.0,
        "complete": True, "measured_length_mm": 43.2,
        "anatomical": {"inclination_deg": 12.0, "anteversion_deg": 4.0, "cranial_deg": -3.0,
                       "axial_deg": 80.0},
        "ct": {"entry_lps": [10.0, 20.0, 30.0], "target_lps": [50.0, 25.0, 28.0],
               "study_id": study.pk},
    }
    open_one = {"name": "open", "complete": False, "diameter_mm": 6.5, "length_mm": None}
    snapshot = {"schema": "orthofuse.plan/1", "world_frame": "ct", "study_id": study.pk,
                "trajectories": [trajectory, open_one]}
    return PlanVersion.objects.create(plan=plan, number=1, snapshot=snapshot)
