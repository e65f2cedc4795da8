"""Training and registration jobs end to end through a real Celery worker, on a tiny
synthetic CT (the quick preset shrunk through environment variables)."""

from __future__ import annotations

import numpy as np
import pytest
from django.core.files.storage import default_storage

from tests.core.factories import isolated_media  # noqa: F401
from tests.jobs.conftest import (  # noqa: F401 - fixtures
    broker_ready,
    celery_worker,
    fast_heartbeat,
    purged_queues,
    wait_for,
)
from tests.review.helpers import TINY_TRAINING, simulated_xray, tiny_study


@pytest.fixture
def tiny_training(monkeypatch):
    for key, value in TINY_TRAINING.items():
        monkeypatch.setenv(key, value)


FINISHED = ("succeeded", "failed", "cancelled")


def _job_done(row) -> bool:
    from webapp.jobs.models import Job

    return Job.objects.filter(pk=row.job_id, status__in=FINISHED).exists()


def _wait_model(model, timeout=120):
    from webapp.xray_registration.models import RegistrationModel

    def done():
        model.refresh_from_db()
        return model.status != RegistrationModel.Status.TRAINING and _job_done(model)

    wait_for(done, timeout=timeout, what=f"training of model {model.pk}")
    return model


def _wait_registration(reg, timeout=120):
    from webapp.xray_registration.models import Registration

    def done():
        reg.refresh_from_db()
        return reg.status != Registration.Status.RUNNING and _job_done(reg)

    wait_for(done, timeout=timeout, what=f"registration {reg.pk}")
    return reg


@pytest.mark.worker
@pytest.mark.usefixtures("celery_worker")
def test_train_then_register_through_the_worker(tiny_training, patient_a, surgeon_a):
    from geometry.rigid import target_error_mm
    from webapp.jobs.models import Job
    from webapp.xray_registration.models import Registration, RegistrationModel
    from webapp.xray_registration.services import (
        MODEL_FILES,
        header_initial_pose,
        start_registration,
        start_training,
    )

    study = tiny_study(patient_a)
    xray = simulated_xray(patient_a)
    blank = simulated_xray(patient_a, blank=True, description="blank")

    model = _wait_model(start_training(study, "quick", user=surgeon_a))
    job = Job.objects.get(pk=model.job_id)
    assert job.status == Job.Status.SUCCEEDED, job.error
    assert job.kind == "train_registration_model" and job.queue == "gpu"
    assert model.status == RegistrationModel.Status.READY
    for name in MODEL_FILES:
        assert default_storage.exists(f"{model.storage_prefix}/{name}"), name
    meta = model.model_json
    assert meta["input_size"] == 32 and meta["training"]["steps_done"] == 40
    assert meta["camera"]["width"] == 64  # trained with the patient's X-ray camera
    steps = [p["step"] for p in model.training_curve]
    assert steps[0] == 1 and steps[-1] == 40 and steps == sorted(set(steps))
    assert all(np.isfinite(p["loss"]) for p in model.training_curve)

    reg = _wait_registration(start_registration(xray, user=surgeon_a))
    rjob = Job.objects.get(pk=reg.job_id)
    assert rjob.status == Job.Status.SUCCEEDED, rjob.error
    assert reg.model_id == model.pk and reg.study_id == study.pk
    for stage in ("prepare", "load", "preprocess", "network", "quality"):
        assert stage in reg.stages, stage
    assert reg.seconds > 0 and reg.camera["width"] == 64
    # a 40-step network is too weak to find the pose alone; the header angles give the
    # refinement its start, and the network's bone mask passes the agreement check
    assert reg.status == Registration.Status.OK, reg.message
    T = np.asarray(reg.T_cam_from_world)
    start = header_initial_pose(xray, meta["normalisation"]["centre_lps_mm"])
    pts = np.random.default_rng(0).uniform(-40, 40, (200, 3))
    true_T = np.asarray(xray.ground_truth["T_cam_from_world"])
    before = target_error_mm(pts, start, true_T).mean()
    after = target_error_mm(pts, T, true_T).mean()
    assert after < before and after < 5.0, (before, after)
    assert reg.quality["true_mtre_mm"] < 5.0
    assert reg.quality["local_similarity"] >= 0.8  # passed the check (0.75) with margin
    assert reg.overlay_file and reg.drr_file
    with reg.overlay_file.open("rb") as fh:
        assert fh.read(8) == b"\x89PNG\r\n\x1a\n"

    failed = _wait_registration(start_registration(blank, user=surgeon_a))
    assert failed.status == Registration.Status.FAILED
    assert "blank" in failed.message
    assert not failed.overlay_file and failed.T_cam_from_world is None


@pytest.mark.worker
@pytest.mark.usefixtures("celery_worker")
def test_training_a_ct_without_bone_fails_clearly(tiny_training, patient_a, surgeon_a):
    from webapp.jobs.models import Job
    from webapp.xray_registration.models import RegistrationModel
    from webapp.xray_registration.services import MODEL_FILES, start_training

    study = tiny_study(patient_a, bone=False)
    model = _wait_model(start_training(study, user=surgeon_a))
    assert model.status == RegistrationModel.Status.FAILED
    job = Job.objects.get(pk=model.job_id)
    assert job.status == Job.Status.FAILED
    assert "no bone" in job.error and "\n" not in job.error.strip()
    for name in MODEL_FILES:
        assert not default_storage.exists(f"{model.storage_prefix}/{name}")


@pytest.mark.worker
@pytest.mark.usefixtures("celery_worker")
def test_training_is_cancellable(monkeypatch, patient_a, surgeon_a):
    from webapp.jobs.models import Job
    from webapp.jobs.services import cancel_job
    from webapp.xray_registration.models import RegistrationModel
    from webapp.xray_registration.services import start_training

    for key, value in {**TINY_TRAINING, "ORTHOFUSE_TRAIN_STEPS": "100000"}.items():
        monkeypatch.setenv(key, value)
    study = tiny_study(patient_a)
    model = start_training(study, user=surgeon_a)

    def curve_started():
        model.refresh_from_db()
        return len(model.training_curve) >= 2

    wait_for(curve_started, timeout=90, what="the first loss points")
    cancel_job(Job.objects.get(pk=model.job_id), surgeon_a)
    _wait_model(model, timeout=60)
    assert model.status == RegistrationModel.Status.CANCELLED
    job = Job.objects.get(pk=model.job_id)
    wait_for(
        lambda: Job.objects.get(pk=job.pk).status == Job.Status.CANCELLED,
        timeout=30,
        what="job cancelled",
    )


@pytest.mark.worker
@pytest.mark.usefixtures("celery_worker")
def test_registering_an_image_of_something_else_fails(tiny_training, patient_a, surgeon_a):
    """An X-ray of something else (smooth random blobs, same header geometry) is refused by
    the self-checks with a one-line reason, also when the header angles give a rough start."""
    import cv2
    from django.core.files.base import ContentFile

    from tests.review.helpers import png16
    from webapp.xray_registration.models import Registration
    from webapp.xray_registration.services import start_registration, start_training

    study = tiny_study(patient_a)
    other = simulated_xray(patient_a, description="something else")
    rng = np.random.default_rng(5)
    blobs = cv2.GaussianBlur(rng.normal(0, 1, (64, 64)).astype(np.float32), (0, 0), 4)
    pixels = 30000 + 20000 * blobs / np.abs(blobs).max()
    other.original_file.save("other.png", ContentFile(png16(pixels)), save=True)
    model = _wait_model(start_training(study, user=surgeon_a))
    assert model.status == "ready"
    reg = _wait_registration(start_registration(other, user=surgeon_a))
    assert reg.status == Registration.Status.FAILED, reg.quality
    assert reg.quality.get("failed_check")
    assert reg.message and "\n" not in reg.message
    assert reg.T_cam_from_world is None and not reg.overlay_file


@pytest.mark.worker
@pytest.mark.usefixtures("celery_worker")
def test_training_free_registration_through_the_worker(patient_a, surgeon_a):
    """Right after the CT arrives, with no model: the job registers in training-free mode,
    says so and which start won, and lands near the true pose."""
    from geometry.rigid import target_error_mm
    from webapp.jobs.models import Job
    from webapp.xray_registration.models import Registration
    from webapp.xray_registration.services import start_registration

    study = tiny_study(patient_a)
    xray = simulated_xray(patient_a)
    reg = _wait_registration(start_registration(xray, user=surgeon_a), timeout=240)
    job = Job.objects.get(pk=reg.job_id)
    assert job.status == Job.Status.SUCCEEDED, job.error
    assert reg.model_id is None and reg.study_id == study.pk
    assert reg.quality["mode"] == "training-free"
    assert reg.quality["start"] in ("library", "header"), reg.stages.get("start")
    assert "network" not in reg.stages
    assert reg.status == Registration.Status.OK, reg.message
    pts = np.random.default_rng(1).uniform(-40, 40, (200, 3))
    true_T = np.asarray(xray.ground_truth["T_cam_from_world"])
    assert target_error_mm(pts, np.asarray(reg.T_cam_from_world), true_T).mean() < 5.0
