"""X-rays that arrive by web upload go through the same arrival hook as DICOM shots (the
records signal ``xray_stored``): with an open session the uploaded X-ray becomes a shot
with its registration; without one nothing is started."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from tests.core.factories import isolated_media, make_study  # noqa: F401
from tests.records.jobflow import upload_and_run
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
