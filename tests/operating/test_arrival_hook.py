"""The arrival hook: an X-ray of a patient with an open session becomes a shot with one
registration job (training-free without a ready model), nothing happens without a session,
a re-delivered X-ray starts nothing new, and the tile says when the device is uncalibrated
or the registration could not start."""

from __future__ import annotations

import pytest

from tests.core.factories import isolated_media, make_carm, make_study, make_xray  # noqa: F401
from tests.dicomnet.conftest import make_node, node_settings, wait_for  # noqa: F401


@pytest.fixture
def session_a(patient_a, surgeon_a):
    from webapp.operating.services import open_session

    return open_session(patient=patient_a, operation="SI screw", user=surgeon_a)[0]


def _hook(xray, capture):
    from webapp.operating.services import on_xray_stored

    with capture(execute=False) as callbacks:
        shot = on_xray_stored(xray)
    return shot, callbacks


def test_a_shot_of_the_session_patient_queues_one_registration(
    session_a, patient_a, django_capture_on_commit_callbacks
):
    from webapp.jobs.models import Job
    from webapp.xray_registration.models import Registration

    study = make_study(patient_a)
    xray = make_xray(patient_a)
    shot, callbacks = _hook(xray, django_capture_on_commit_callbacks)
    assert shot is not None and shot.session == session_a and shot.xray == xray
    reg = shot.registration
    assert reg is not None and shot.refusal == ""
    assert reg.xray == xray and reg.study == study and reg.model is None  # training-free
    job = Job.objects.get(pk=reg.job_id)
    assert job.kind == "register_xray" and job.queue == "gpu"
    assert job.params == {"registration_id": reg.pk} and job.patient_id == patient_a.pk
    assert len(callbacks) == 1  # one message, sent when the arrival commits
    assert Registration.objects.count() == 1


def test_a_redelivered_xray_starts_nothing_new(
    session_a, patient_a, django_capture_on_commit_callbacks
):
    from webapp.jobs.models import Job
    from webapp.operating.models import SessionShot
    from webapp.xray_registration.models import Registration

    make_study(patient_a)
    xray = make_xray(patient_a)
    first, _ = _hook(xray, django_capture_on_commit_callbacks)
    again, callbacks = _hook(xray, django_capture_on_commit_callbacks)
    assert again.pk == first.pk and callbacks == []
    assert SessionShot.objects.count() == 1
    assert Registration.objects.count() == 1 and Job.objects.count() == 1


def test_no_shot_without_an_open_session_of_that_patient(
    patient_a, patient_b, surgeon_a, surgeon_b, django_capture_on_commit_callbacks
):
    from webapp.operating.models import SessionShot
    from webapp.operating.services import close_session, open_session
    from webapp.xray_registration.models import Registration

    make_study(patient_a)
    assert _hook(make_xray(patient_a), django_capture_on_commit_callbacks) == (None, [])
    open_session(patient=patient_b, operation="other patient", user=surgeon_b)
    assert _hook(make_xray(patient_a, seed=1), django_capture_on_commit_callbacks)[0] is None
    session, _ = open_session(patient=patient_a, operation="closed again", user=surgeon_a)
    close_session(session, user=surgeon_a)
    assert _hook(make_xray(patient_a, seed=2), django_capture_on_commit_callbacks)[0] is None
    assert not SessionShot.objects.exists() and not Registration.objects.exists()


def _active_profile(carm):
    from webapp.calibration.models import CalibrationProfile

    return CalibrationProfile.objects.create(
        carm=carm, version=1, status=CalibrationProfile.Status.ACTIVE, data={"K": [[1, 0, 0]]}
    )


@pytest.mark.parametrize(
    ("device", "words"),
    [
        ("none", "no C-arm recorded for this shot"),
        ("flat panel", "uncalibrated device: C-arm Ziehm test has no active calibration profile"),
        ("intensifier", "(image intensifier) has no active calibration profile, so the shot "
                        "cannot be dewarped"),
        ("calibrated intensifier", ""),
    ],
)
def test_the_tile_says_when_the_device_is_uncalibrated(
    session_a, patient_a, django_capture_on_commit_callbacks, device, words
):
    from webapp.operating.tiles import shot_tile
    from webapp.records.models import CArm

    make_study(patient_a)
    carm = None
    if device != "none":
        carm = make_carm(
            detector_type=CArm.DetectorType.FLAT_PANEL
            if device == "flat panel"
            else CArm.DetectorType.IMAGE_INTENSIFIER
        )
    if device == "calibrated intensifier":
        _active_profile(carm)
    shot, _ = _hook(make_xray(patient_a, carm=carm), django_capture_on_commit_callbacks)
    assert shot.registration is not None  # noted, yet registered all the same
    tile = shot_tile(shot)
    assert tile["device_note"] == shot.device_note
    if words:
        assert words in shot.device_note
    else:
        assert shot.device_note == ""


def test_a_patient_without_ct_gets_a_refused_tile(
    session_a, patient_a, django_capture_on_commit_callbacks
):
    from webapp.operating.tiles import shot_tile
    from webapp.xray_registration.models import Registration

    shot, callbacks = _hook(make_xray(patient_a), django_capture_on_commit_callbacks)
    assert shot.registration is None and callbacks == []
    assert "no CT study ready" in shot.refusal
    tile = shot_tile(shot)
    assert tile["state"] == "refused"
    assert tile["message"].startswith("Registration not started: the patient has no CT")
    assert tile["overlay_url"] is None and not Registration.objects.exists()


def test_the_session_ct_is_the_one_registered_to(
    patient_a, surgeon_a, django_capture_on_commit_callbacks
):
    from webapp.operating.services import open_session

    chosen = make_study(patient_a, series_instance_uid="1.2.1")
    make_study(patient_a, series_instance_uid="1.2.2")  # newer, not the session's
    open_session(patient=patient_a, operation="nail", user=surgeon_a, study=chosen)
    shot, _ = _hook(make_xray(patient_a), django_capture_on_commit_callbacks)
    assert shot.registration.study == chosen


@pytest.mark.slow
def test_a_shot_sent_by_c_store_is_registered_and_gets_its_overlay(make_node, surgeon_a):  # noqa: F811
    """Through the listener: the shot lands in the session, a resend adds nothing, and
    the registration job (run here, eagerly) leaves the overlay the tile shows."""
    from registration.engine.drr import DrrRenderer
    from webapp.jobs.runner import execute_job
    from webapp.operating.bench_shots import bench_volume, c_store, shot_dataset, shot_pixels
    from webapp.operating.models import SessionShot
    from webapp.operating.services import open_session
    from webapp.operating.tiles import shot_tile
    from webapp.records.models import CTStudy, Patient
    from webapp.records.volume_store import save_volume

    patient = Patient.objects.create(mrn="OR-7", family_name="Seven")
    study = CTStudy(patient=patient, description="tiny bone CT", status=CTStudy.Status.READY)
    save_volume(study, bench_volume())
    study.save()
    session, _ = open_session(patient=patient, operation="SI screw", user=surgeon_a)
    node = make_node()

    renderer = DrrRenderer(bench_volume(), bone_threshold_hu=200.0)
    ds = shot_dataset(shot_pixels(renderer, 10.0, 5.0), mrn="OR-7", primary_deg=10.0,
                      secondary_deg=5.0)
    assert c_store(node.port, ds) == (0, "")
    shot = wait_for(lambda: SessionShot.objects.select_related("registration").first())
    assert shot.session == session and shot.registration is not None
    assert "uncalibrated device: C-arm Simulated BENCH-FP has no active" in shot.device_note
    assert c_store(node.port, ds) == (0, "")  # the C-arm sends it again
    assert SessionShot.objects.count() == 1

    tile = shot_tile(shot)
    assert tile["state"] == "registering" and tile["overlay_url"] is None
    assert execute_job(shot.registration.job_id) == "succeeded"
    shot.refresh_from_db()
    tile = shot_tile(SessionShot.objects.select_related("registration__job").get(pk=shot.pk))
    assert tile["state"] == "registered", tile["message"]
    assert tile["mode"] == "training-free"
    assert tile["overlay_url"].endswith(f"/{shot.registration_id}/overlay.png")


def test_an_uncalibrated_intensifier_shot_is_refused_on_its_tile(
    session_a, patient_a, django_capture_on_commit_callbacks
):
    """It cannot be dewarped: the job refuses it and the tile gives the reason."""
    from webapp.jobs.runner import execute_job
    from webapp.operating.models import SessionShot
    from webapp.operating.tiles import shot_tile
    from webapp.records.models import CArm

    make_study(patient_a)
    carm = make_carm("Old II", detector_type=CArm.DetectorType.IMAGE_INTENSIFIER)
    shot, _ = _hook(make_xray(patient_a, carm=carm), django_capture_on_commit_callbacks)
    assert "cannot be dewarped" in shot.device_note
    assert execute_job(shot.registration.job_id) == "failed"
    tile = shot_tile(SessionShot.objects.select_related("registration__job").get(pk=shot.pk))
    assert tile["state"] == "refused" and tile["overlay_url"] is None
    assert tile["message"].startswith("Registration refused:")
    assert "must be dewarped first" in tile["message"]


@pytest.mark.slow
def test_a_calibrated_intensifier_shot_is_dewarped_by_its_registration(
    session_a, patient_a, surgeon_a, make_user, django_capture_on_commit_callbacks
):
    from django.core.files.storage import default_storage

    from tests.review.helpers import tiny_study
    from webapp.demo.builder import demo_calibrations, demo_carm, demo_xrays
    from webapp.jobs.runner import execute_job
    from webapp.operating.models import SessionShot
    from webapp.operating.tiles import shot_tile

    study = tiny_study(patient_a)
    carm = demo_carm()
    demo_calibrations(carm, make_user("admin", superuser=True))
    xray = demo_xrays(patient_a, study, carm, surgeon_a)[0]
    xray.dewarped_file.delete(save=False)  # as it arrives: not dewarped yet
    xray.dewarp_info = {}
    xray.save()
    shot, _ = _hook(xray, django_capture_on_commit_callbacks)
    assert shot.device_note == ""  # calibrated
    assert execute_job(shot.registration.job_id) in ("succeeded", "failed")
    xray.refresh_from_db()
    assert xray.dewarped_file and default_storage.exists(xray.dewarped_file.name)
    assert xray.dewarp_info["dewarped"] is True
    shot = SessionShot.objects.select_related("registration__job").get(pk=shot.pk)
    assert shot.registration.stages["prepare"]["dewarped"] is True
    assert shot_tile(shot)["state"] in ("registered", "refused")
