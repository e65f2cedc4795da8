"""Registration services without a worker: cameras, refusals, landmark errors, true mTRE."""

from __future__ import annotations

import numpy as np
import pytest

from tests.core.factories import isolated_media  # noqa: F401
from tests.review.helpers import (
    camera,
    finished_registration,
    simulated_xray,
    tiny_study,
    true_pose,
)


@pytest.fixture
def scene(patient_a):
    study = tiny_study(patient_a)
    xray = simulated_xray(patient_a)
    return study, xray


def test_register_without_a_trained_model_runs_training_free(
    scene, surgeon_a, django_capture_on_commit_callbacks
):
    from webapp.core.models import AuditEvent
    from webapp.xray_registration.models import RegistrationModel
    from webapp.xray_registration.services import start_registration

    study, xray = scene
    RegistrationModel.objects.create(study=study, status=RegistrationModel.Status.TRAINING)
    with django_capture_on_commit_callbacks(execute=False):
        reg = start_registration(xray, user=surgeon_a)
    assert reg.model is None and reg.study_id == study.pk
    assert reg.job.kind == "register_xray"
    assert AuditEvent.objects.filter(detail__contains="training-free mode").exists()


def test_start_training_refuses_unknown_preset_and_reuses_a_running_one(
    scene, surgeon_a, django_capture_on_commit_callbacks
):
    from webapp.jobs.models import Job
    from webapp.xray_registration.models import RegistrationModel
    from webapp.xray_registration.services import RegistrationRefused, start_training

    study, _ = scene
    with pytest.raises(RegistrationRefused, match="unknown preset 'huge'"):
        start_training(study, "huge", user=surgeon_a)
    assert not RegistrationModel.objects.exists()
    with django_capture_on_commit_callbacks(execute=False):
        first = start_training(study, "quick", user=surgeon_a)
        again = start_training(study, "quick", user=surgeon_a)
    assert again.pk == first.pk
    job = Job.objects.get(pk=first.job_id)
    assert job.kind == "train_registration_model" and job.queue == "gpu"
    assert job.params == {"model_id": first.pk, "preset": "quick"}
    assert job.patient_id == study.patient_id
    assert first.storage_prefix.endswith(f"study-{study.pk}/model-{first.pk}")


def test_camera_from_header_and_refusal_without_geometry(scene):
    from webapp.xray_registration.services import RegistrationRefused, xray_camera

    _, xray = scene
    cam = xray_camera(xray, 64, 64)
    np.testing.assert_allclose(cam.K, camera().K, atol=1e-9)
    half = xray_camera(xray, 32, 32)  # a resampled grid scales the intrinsics
    assert half.K[0, 0] == pytest.approx(camera().K[0, 0] / 2, rel=1e-12)
    with pytest.raises(RegistrationRefused, match="aspect ratio"):
        xray_camera(xray, 64, 32)
    xray.distance_source_to_detector_mm = None
    xray.save()
    with pytest.raises(RegistrationRefused, match="geometry is unknown"):
        xray_camera(xray, 64, 64)


def test_camera_prefers_the_active_calibration_profile(scene, make_user):
    from webapp.calibration.models import CalibrationProfile
    from webapp.records.models import CArm
    from webapp.xray_registration.services import training_camera, xray_camera

    study, xray = scene
    carm = CArm.objects.create(name="flat", detector_type=CArm.DetectorType.FLAT_PANEL)
    K = [[300.0, 0.0, 30.0], [0.0, 300.0, 33.0], [0.0, 0.0, 1.0]]
    CalibrationProfile.objects.create(
        carm=carm,
        version=1,
        status=CalibrationProfile.Status.ACTIVE,
        data={
            "K": K,
            "width": 64,
            "height": 64,
            "pixel_spacing_mm": [3.6, 3.6],
            "source_mm": [0, 0, -1080.0],
        },
    )
    xray.carm = carm
    xray.save()
    cam = xray_camera(xray, 64, 64)
    np.testing.assert_allclose(cam.K, K)
    assert cam.source_to_detector_mm == pytest.approx(1080.0)
    np.testing.assert_allclose(training_camera(study).K, K)


def test_landmark_error_in_pixels_and_mm_at_detector(scene, make_user):
    from geometry.camera import project
    from webapp.review.decisions import add_landmark
    from webapp.xray_registration.services import RegistrationRefused

    study, xray = scene
    reviewer = make_user("rev", "Reviewer")
    reg = finished_registration(xray, study)
    X = np.array([12.0, -7.0, 20.0])
    uv = project(X[None], camera().K, true_pose())[0]
    exact = add_landmark(reg, reviewer, uv[0], uv[1], X)
    assert exact.error_px == pytest.approx(0.0, abs=1e-6)
    off = add_landmark(reg, reviewer, uv[0] + 3.0, uv[1] - 4.0, X)
    assert off.error_px == pytest.approx(5.0, abs=1e-6)
    assert off.error_mm_at_detector == pytest.approx(5.0 * 3.6, abs=1e-6)
    with pytest.raises(RegistrationRefused, match="outside the 64x64 image"):
        add_landmark(reg, reviewer, 80.0, 10.0, X)
    with pytest.raises(RegistrationRefused, match="finite"):
        add_landmark(reg, reviewer, float("nan"), 10.0, X)
    failed = finished_registration(xray, study, status="failed")
    with pytest.raises(RegistrationRefused, match="only a successful registration"):
        add_landmark(failed, reviewer, 10.0, 10.0, X)


def test_true_target_error_is_zero_at_the_true_pose_and_grows_with_an_offset():
    from tests.review.helpers import tiny_volume
    from webapp.xray_registration.services import true_target_error

    vol = tiny_volume()
    T = true_pose()
    assert true_target_error(vol, 200.0, T, T)["true_mtre_mm"] == pytest.approx(0.0, abs=1e-9)
    shifted = T.copy()
    shifted[:3, 3] += [3.0, 4.0, 0.0]  # a pure translation: every point moves 5 mm
    out = true_target_error(vol, 200.0, shifted, T)
    assert out["true_mtre_mm"] == pytest.approx(5.0, abs=1e-6)
    assert out["true_error_points"] > 100


def test_review_decisions(scene, make_user):
    from webapp.core.models import AuditEvent
    from webapp.review.decisions import review_registration
    from webapp.xray_registration.services import RegistrationRefused

    study, xray = scene
    reviewer = make_user("rev", "Reviewer")
    reg = finished_registration(xray, study)
    with pytest.raises(RegistrationRefused, match="say why"):
        review_registration(reg, reviewer, "rejected", "  ")
    review_registration(reg, reviewer, "accepted", "edges match")
    reg.refresh_from_db()
    assert (reg.review_status, reg.review_comment, reg.reviewed_by) == (
        "accepted",
        "edges match",
        reviewer,
    )
    assert AuditEvent.objects.filter(
        object_type="Registration", object_id=str(reg.pk), action="update"
    ).exists()
