"""Uploads of real public data through the web pages (skipped when ../shared/data is absent):
a JPEG 2000 CT series as a .zip, and a real MONOCHROME1 CR radiograph with its preview."""

from __future__ import annotations

import io
import zipfile

import cv2
import numpy as np
import pydicom
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from tests.conftest import shared_path
from tests.core.factories import isolated_media  # noqa: F401
from tests.records.jobflow import queued_job, run_job
from webapp.records.models import CTStudy, XrayImage


@pytest.mark.django_db
def test_real_j2k_ct_series_zip_upload(client, surgeon_a, patient_a):
    folder = shared_path("dicom", "ct_series_abdomen_j2k")
    files = sorted(p for p in folder.iterdir() if p.is_file())
    headers = [pydicom.dcmread(p, stop_before_pixels=True) for p in files]
    z = sorted(float(h.ImagePositionPatient[2]) for h in headers)
    row_mm, col_mm = (float(v) for v in headers[0].PixelSpacing)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in files:
            archive.write(path, arcname=f"series/{path.name}")
    client.force_login(surgeon_a)
    response = client.post(
        reverse("records:ct-upload", kwargs={"pk": patient_a.pk}),
        {"files": SimpleUploadedFile("abdomen.zip", buffer.getvalue())},
    )
    job = run_job(queued_job(response))
    study = CTStudy.objects.get(patient=patient_a)
    assert job.result["study_id"] == study.pk
    assert study.shape == [len(files), int(headers[0].Rows), int(headers[0].Columns)]
    np.testing.assert_allclose(
        study.spacing_mm, [col_mm, row_mm, (z[-1] - z[0]) / (len(z) - 1)], atol=1e-3
    )
    assert -1100 <= study.hu_min < -500 and study.hu_max > 500  # air and bone present
    page = client.get(reverse("records:study-detail", kwargs={"pk": study.pk}))
    assert page.status_code == 200
    assert study.series_instance_uid in page.content.decode()


@pytest.mark.django_db
def test_real_cr_radiograph_upload_and_preview(client, surgeon_a, patient_a):
    path = shared_path("dicom", "pydicom_data", "RG3_J2KR.dcm")
    ds = pydicom.dcmread(path)
    assert ds.PhotometricInterpretation == "MONOCHROME1"
    client.force_login(surgeon_a)
    response = client.post(
        reverse("records:xray-upload", kwargs={"pk": patient_a.pk}),
        {"file": SimpleUploadedFile("chest.dcm", path.read_bytes()), "description": "chest"},
    )
    job = run_job(queued_job(response))
    xray = XrayImage.objects.get(patient=patient_a)
    assert job.result["xray_id"] == xray.pk
    assert (xray.rows, xray.cols) == (int(ds.Rows), int(ds.Columns))
    preview = client.get(reverse("records:xray-preview", kwargs={"pk": xray.pk}))
    assert preview.status_code == 200
    image = cv2.imdecode(np.frombuffer(preview.content, np.uint8), cv2.IMREAD_UNCHANGED)
    assert max(image.shape) == 1024
    stored = cv2.resize(
        ds.pixel_array.astype(np.float32), image.shape[::-1], interpolation=cv2.INTER_AREA
    )
    correlation = np.corrcoef(stored.ravel(), image.astype(np.float32).ravel())[0, 1]
    assert correlation < -0.9  # MONOCHROME1 shown inverted (high stored value = dark)
