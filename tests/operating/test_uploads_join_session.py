"""X-rays that arrive by web upload go through the same arrival hook as DICOM shots (the
records signal ``xray_stored``): with an open session the uploaded X-ray becomes a shot
with its registration; without one nothing is started."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from tests.core.factories import isolated_media, make_study  # noqa: F401
from tests.records.jobflow import run_job, upload_and_run
from tests.records.test_upload_jobs import _xray_dicom, _xray_url


@pytest.mark.django_db
def test_an_uploaded_xray_joins_the_open_session(client, patient_a, surgeon_a):
    from webapp.operating.models import SessionShot
    from webapp.operating.services import open_session
    from webapp.records.models import XrayImage

    make_study(patient_a)
    session, _ = open_session(patient=patient_a, operation="SI screw", user=surgeon_a)
    client.force_login(surgeon_a)
    data = {"file": SimpleUploadedFile("shot.dcm", _xray_dicom()), "description": "AP"}
    upload_and_run(client, _xray_url(patient_a), data)
    shot = SessionShot.objects.get(xray=XrayImage.objects.get())
    assert shot.session == session
    assert shot.registration is not None and shot.refusal == ""


@pytest.mark.django_db
def test_without_a_session_an_upload_starts_nothing(client, patient_a, surgeon_a):
    from webapp.operating.models import SessionShot

    client.force_login(surgeon_a)
    data = {"file": SimpleUploadedFile("shot.dcm", _xray_dicom()), "description": "AP"}
    upload_and_run(client, _xray_url(patient_a), data)
    assert not SessionShot.objects.exists()


@pytest.mark.django_db
def test_a_rerun_of_a_finished_import_still_announces_its_xray(client, patient_a, surgeon_a):
    """An import committed by a run that died before announcing joins the session when the
    job runs again (the hook is idempotent, so announcing twice adds nothing)."""
    from webapp.operating.models import SessionShot
    from webapp.operating.services import open_session
    from webapp.records.models import XrayImage

    client.force_login(surgeon_a)
    data = {"file": SimpleUploadedFile("shot.dcm", _xray_dicom()), "description": "AP"}
    job = upload_and_run(client, _xray_url(patient_a), data)
    assert not SessionShot.objects.exists()  # no session when it was imported
    make_study(patient_a)
    open_session(patient=patient_a, operation="SI screw", user=surgeon_a)
    job.status = job.Status.QUEUED
    job.save(update_fields=["status"])
    run_job(job)
    assert SessionShot.objects.filter(xray=XrayImage.objects.get()).count() == 1


@pytest.mark.django_db
def test_a_failing_receiver_is_logged_and_the_import_still_succeeds(
    client, patient_a, surgeon_a, caplog
):
    from webapp.records.models import XrayImage
    from webapp.records.signals import xray_stored

    def broken(sender, **kwargs):
        raise RuntimeError("receiver bug")

    xray_stored.connect(broken, dispatch_uid="test-broken")
    try:
        client.force_login(surgeon_a)
        data = {"file": SimpleUploadedFile("shot.dcm", _xray_dicom()), "description": "AP"}
        job = upload_and_run(client, _xray_url(patient_a), data)
    finally:
        xray_stored.disconnect(dispatch_uid="test-broken")
    assert job.result["xray_id"] == XrayImage.objects.get().pk
    assert any("receiver bug" in (r.exc_text or str(r.exc_info)) for r in caplog.records)
