"""Building the demo: a calibrated image-intensifier C-arm and simulated C-arm shots of the
demo CT. Every step is idempotent (skipped when its result already exists)."""

from __future__ import annotations

import cv2
import numpy as np
from django.core.files.base import ContentFile

from webapp.records.models import CArm, CTStudy, Patient, XrayImage

DEMO_CARM = "Demo C-arm (image intensifier)"
DETECTOR_PX = 512
SPACING_MM = (0.5, 0.5)
SOURCE_MM = (1.0, -2.0, -1000.0)  # effective source in the detector frame
SOURCE_TO_ISOCENTER_MM = 600.0
DEMO_ANGLES = ((0.0, 0.0), (90.0, 0.0))
DEMO_SHOTS = (
    ("AP pelvis", 0.0, 0.0, (0.0, 0.0, 0.0)),
    ("Lateral pelvis", 90.0, 0.0, (0.0, 0.0, 0.0)),
    ("Oblique close-up, left hip", 20.0, 10.0, (40.0, 0.0, -40.0)),
)


def _geometry():
    from simulation.phantom_frames import SimGeometry

    return SimGeometry(width=DETECTOR_PX, height=DETECTOR_PX, spacing=SPACING_MM, source_mm=SOURCE_MM)


def _distortion(primary_deg: float):
    """The demo intensifier's distortion; its S-part changes with the C-arm angle."""
    from simulation.phantom_frames import IIDistortion

    return IIDistortion(k1=0.05, k2=0.005, phi0=0.02 + 0.01 * np.sin(np.radians(primary_deg)), radius_mm=120.0)


def _png16(image: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", np.clip(image, 0, 65535).astype(np.uint16))
    if not ok:
        raise ValueError("PNG encoding failed")
    return buf.tobytes()


def demo_carm() -> CArm:
    carm, _ = CArm.objects.get_or_create(
        name=DEMO_CARM,
        defaults={
            "manufacturer": "Simulated",
            "model_name": "II 9-inch",
            "detector_type": CArm.DetectorType.IMAGE_INTENSIFIER,
            "detector_width_px": DETECTOR_PX,
            "detector_height_px": DETECTOR_PX,
            "pixel_spacing_x_mm": SPACING_MM[0],
            "pixel_spacing_y_mm": SPACING_MM[1],
            "source_to_detector_mm": -SOURCE_MM[2],
        },
    )
    return carm


def demo_calibrations(carm: CArm, admin) -> list:
    """An active profile at each demo angle, computed from a simulated phantom image."""
    from calibration.engine.phantom import builtin_phantom
    from simulation.phantom_frames import simulate_phantom_image
    from webapp.calibration.models import CalibrationProfile
    from webapp.calibration.services import (
        activate_profile,
        ensure_builtin_phantoms,
        run_calibration,
    )

    phantoms = {p.name: p for p in ensure_builtin_phantoms()}
    phantom_row = phantoms["OrthoFuse clip-on two-layer phantom"]
    made = []
    for primary, secondary in DEMO_ANGLES:
        exists = carm.profiles.filter(
            status=CalibrationProfile.Status.ACTIVE, primary_angle_deg=primary, secondary_angle_deg=secondary
        ).exists()
        if exists:
            continue
        sim = simulate_phantom_image(
            builtin_phantom("clipon_two_layer"), _geometry(), _distortion(primary),
            rng=int(primary) + 7, fov_radius_mm=120.0,
        )
        version = (carm.profiles.order_by("-version").values_list("version", flat=True).first() or 0) + 1
        profile = CalibrationProfile.objects.create(
            carm=carm, version=version, phantom=phantom_row, calibrated_by=admin,
            primary_angle_deg=primary, secondary_angle_deg=secondary,
        )
        profile.image_file.save("phantom.png", ContentFile(_png16(sim.image)))
        run_calibration(profile, SPACING_MM)
        activate_profile(profile, admin, "demo calibration from a simulated phantom image")
        made.append(profile)
    return made


def demo_xrays(patient: Patient, study: CTStudy, carm: CArm, user) -> list[XrayImage]:
    """Simulated, distorted C-arm shots of the demo CT with the phantom beads visible."""
    from calibration.engine.phantom import builtin_phantom
    from geometry.carm import carm_pose
    from registration.engine.drr import DrrRenderer
    from simulation.carm_shots import simulate_carm_shot
    from webapp.calibration.services import dewarp_xray
    from webapp.records.volume_store import load_study_volume

    missing = [s for s in DEMO_SHOTS if not patient.xrays.filter(description=s[0]).exists()]
    if not missing:
        return []
    volume = load_study_volume(study)
    bone = np.argwhere(np.asarray(volume.array) >= 200)
    isocenter = volume.voxel_to_world(bone[:, ::-1].mean(axis=0)[None])[0]
    renderer = DrrRenderer(volume)
    phantom = builtin_phantom("clipon_two_layer")
    made = []
    for index, (description, primary, secondary, shift) in enumerate(missing):
        T = carm_pose(primary, secondary, SOURCE_TO_ISOCENTER_MM, isocenter + np.asarray(shift))
        shot = simulate_carm_shot(renderer, T, phantom, _geometry(), _distortion(primary), rng=100 + index)
        xray = XrayImage(
            patient=patient,
            carm=carm,
            description=description,
            file_format=XrayImage.Format.PNG,
            rows=DETECTOR_PX,
            cols=DETECTOR_PX,
            bits_stored=16,
            photometric_interpretation="MONOCHROME2",
            distance_source_to_detector_mm=-SOURCE_MM[2],
            distance_source_to_patient_mm=SOURCE_TO_ISOCENTER_MM,
            pixel_spacing_x_mm=SPACING_MM[0],
            pixel_spacing_y_mm=SPACING_MM[1],
            primary_angle_deg=primary,
            secondary_angle_deg=secondary,
            ground_truth={
                "T_cam_from_world": shot.T_cam_from_world.tolist(),
                "camera": shot.camera.to_json(),
                "note": "simulated from the demo CT; the pose is exact",
            },
            created_by=user,
        )
        xray.original_file.save("demo.png", ContentFile(_png16(shot.pixels)), save=False)
        xray.save()
        dewarp_xray(xray)
        made.append(xray)
    return made


def demo_plan(patient: Patient, user):
    """An (empty) two-view plan on the demo AP and lateral shots, ready for picking."""
    from webapp.planning.models import Plan
    from webapp.planning.services import create_plan

    name = "Demo plan: sacroiliac screw"
    existing = Plan.objects.filter(patient=patient, name=name).first()
    if existing is not None:
        return None
    ap = patient.xrays.filter(description=DEMO_SHOTS[0][0]).first()
    lateral = patient.xrays.filter(description=DEMO_SHOTS[1][0]).first()
    if ap is None or lateral is None:
        return None
    return create_plan(patient, user, name, ap, lateral)


def demo_registration_model(study: CTStudy, user):
    """Queue quick training of the demo registration model unless one is ready or training."""
    from webapp.xray_registration.models import RegistrationModel
    from webapp.xray_registration.services import start_training

    if study.registration_models.filter(
        status__in=[RegistrationModel.Status.READY, RegistrationModel.Status.TRAINING]
    ).exists():
        return None
    return start_training(study, preset="quick", user=user)


DEMO_BOMB_FILE = "bomb.nii.gz"
DEMO_BOMB_SHAPE = (1024, 1024, 1024)  # 2^30 int16 voxels, all of them in the file (zeros)


def demo_bomb(patient: Patient, user) -> tuple[object, int, float, float] | None:
    """Run a 2 MB NIfTI decompression bomb through the real CT import job (staged like an
    upload, run in this process as a cpu worker would), so that the demo's Jobs page shows
    a failed "CT import" with the refusal. Once per patient: None when it was run before.
    Returns (the failed job, the bomb's size in bytes, the GiB its header asks the import
    for, the tracemalloc peak of the job in MiB)."""
    import tracemalloc

    from django.core.files.uploadedfile import SimpleUploadedFile

    from dicomio.bombs import nifti_gz_bomb
    from dicomio.nifti import WORKING_BYTES_PER_VOXEL
    from webapp.core.audit import record
    from webapp.jobs.models import Job
    from webapp.jobs.runner import execute_job
    from webapp.records.upload_staging import stage_uploads
    from webapp.records.uploads import CT_JOB

    if Job.objects.filter(kind=CT_JOB, patient=patient, params__demo="bomb").exists():
        return None
    data = nifti_gz_bomb(DEMO_BOMB_SHAPE)
    staged = stage_uploads([SimpleUploadedFile(DEMO_BOMB_FILE, data)])
    params = {**staged.params(), "description": "Demo: a 2 MB decompression bomb",
              "deidentify": False, "series_uid": "", "demo": "bomb"}
    job = Job.objects.create(kind=CT_JOB, queue="cpu", params=params, patient=patient,
                             created_by=user, message="waiting for a worker")
    record(None, "job_start", patient=patient, obj=job, user=user,
           detail=f"{CT_JOB} on queue cpu (demo decompression bomb, run by load_demo)")
    tracemalloc.start()
    try:
        execute_job(job.pk, worker="load_demo")
        _size, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    job.refresh_from_db()
    voxels = int(np.prod(DEMO_BOMB_SHAPE))
    declared_gib = voxels * (2 + WORKING_BYTES_PER_VOXEL) / 2**30
    return job, len(data), declared_gib, peak / 2**20
