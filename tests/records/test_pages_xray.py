"""X-ray upload (staged, imported by a cpu-queue job), detail page with its geometry table, the windowed PNG preview and the
audited download."""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from tests.core.factories import isolated_media, make_carm, make_xray, png_bytes  # noqa: F401
from tests.dicomio.synth import xray_dataset
from tests.records.jobflow import queued_job, run_job, staged_tokens
from webapp.jobs.models import Job
from webapp.records.models import XrayImage
from webapp.xray_view import display_png


def _dicom_bytes(pixels, **kwargs) -> bytes:
    buffer = io.BytesIO()
    xray_dataset(pixels, **kwargs).save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def _ramp(rows=30, cols=50, top=4000):
    return np.tile(np.linspace(0, top, cols), (rows, 1)).astype(np.uint16)


def _decode(content: bytes) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(content, np.uint8), cv2.IMREAD_UNCHANGED)
    assert image is not None and image.dtype == np.uint8
    return image


def _upload(client, patient, upload, **data):
    return client.post(
        reverse("records:xray-upload", kwargs={"pk": patient.pk}), {"file": upload, **data}
    )


@pytest.mark.django_db
def test_dicom_xray_upload_detail_preview_and_download(client, surgeon_a, patient_a):
    client.force_login(surgeon_a)
    payload = _dicom_bytes(
        _ramp(), sdd=1012.5, sod=700.0, imager_spacing=(0.2, 0.3), primary=15.0, secondary=-5.0
    )
    assert payload[:2] == b"MZ"  # the synthetic file carries an executable-looking preamble
    response = _upload(
        client, patient_a, SimpleUploadedFile("C:\\evil\\..\\shot", payload), description="AP"
    )
    job = run_job(queued_job(response))
    xray = XrayImage.objects.get(patient=patient_a)
    assert job.result["xray_id"] == xray.pk
    assert job.result["result_url"] == reverse("records:xray-detail", kwargs={"pk": xray.pk})
    assert staged_tokens() == []
    assert (xray.rows, xray.cols) == (30, 50)
    assert xray.distance_source_to_detector_mm == pytest.approx(1012.5)
    # DICOM ImagerPixelSpacing is [row, column] = [sy, sx]
    assert (xray.pixel_spacing_x_mm, xray.pixel_spacing_y_mm) == pytest.approx((0.3, 0.2))

    page = client.get(job.result["result_url"]).content.decode()
    assert "1012.5" in page and "15.0" in page and "-5.0" in page
    assert reverse("records:xray-preview", kwargs={"pk": xray.pk}) in page

    preview = client.get(reverse("records:xray-preview", kwargs={"pk": xray.pk}))
    assert preview.status_code == 200 and preview["Content-Type"] == "image/png"
    image = _decode(preview.content)
    assert image.shape == (30, 50)
    assert image[:, 0].mean() < 5 and image[:, -1].mean() > 250  # windowed ramp, left dark

    download = client.get(reverse("records:xray-download", kwargs={"pk": xray.pk}))
    assert download.status_code == 200
    stored = b"".join(download.streaming_content)
    assert stored[:128] == b"\0" * 128 and stored[128:132] == b"DICM"
    assert (
        "xray-" in download["Content-Disposition"] and "evil" not in download["Content-Disposition"]
    )


@pytest.mark.django_db
def test_monochrome1_preview_is_inverted(client, surgeon_a, patient_a):
    client.force_login(surgeon_a)
    payload = _dicom_bytes(_ramp(), photometric="MONOCHROME1")
    run_job(queued_job(_upload(client, patient_a, SimpleUploadedFile("a.dcm", payload))))
    xray = XrayImage.objects.get()
    image = _decode(client.get(reverse("records:xray-preview", kwargs={"pk": xray.pk})).content)
    assert image[:, 0].mean() > 250 and image[:, -1].mean() < 5


@pytest.mark.django_db
def test_png_needs_a_carm(client, surgeon_a, patient_a):
    client.force_login(surgeon_a)
    image = (_ramp(top=60000)).astype(np.uint16)
    response = _upload(client, patient_a, SimpleUploadedFile("x.png", png_bytes(image)))
    assert response.status_code == 400
    assert b"C-arm" in response.content
    assert not XrayImage.objects.exists() and not Job.objects.exists()

    carm = make_carm(pixel_spacing_x_mm=0.25, pixel_spacing_y_mm=0.25, source_to_detector_mm=980.0)
    response = _upload(
        client, patient_a, SimpleUploadedFile("x.png", png_bytes(image)), carm=carm.pk
    )
    job = run_job(queued_job(response))
    assert job.params["carm_id"] == carm.pk
    xray = XrayImage.objects.get()
    assert xray.carm == carm and xray.file_format == XrayImage.Format.PNG
    assert xray.distance_source_to_detector_mm == pytest.approx(980.0)
    assert xray.pixel_spacing_x_mm == pytest.approx(0.25)


@pytest.mark.django_db
def test_bad_xray_is_a_form_error(client, surgeon_a, patient_a, settings):
    client.force_login(surgeon_a)
    response = _upload(client, patient_a, SimpleUploadedFile("x.dcm", b"not an image at all"))
    assert response.status_code == 400
    assert b'<small class="error" role="alert">' in response.content
    assert b"&#x27;x.dcm&#x27; is not a DICOM or PNG file" in response.content
    assert not XrayImage.objects.exists() and not Job.objects.exists()
    assert staged_tokens() == []


@pytest.mark.django_db
def test_xray_refused_by_the_importer_fails_the_job(client, surgeon_a, patient_a):
    """A DICOM that is not an X-ray passes the request's check; the job refuses it with the
    importer's message and stores nothing."""
    client.force_login(surgeon_a)
    payload = _dicom_bytes(_ramp(), modality="MR")
    response = _upload(client, patient_a, SimpleUploadedFile("knee.dcm", payload))
    job = run_job(queued_job(response), "failed")
    assert job.error == "not an X-ray image (modality MR; expected XA, RF, DX or CR)"
    assert not XrayImage.objects.exists()
    assert staged_tokens() == []


@pytest.mark.django_db
def test_large_preview_is_shrunk(client, surgeon_a, patient_a):
    xray = make_xray(patient_a, rows=300, cols=2200)
    client.force_login(surgeon_a)
    image = _decode(client.get(reverse("records:xray-preview", kwargs={"pk": xray.pk})).content)
    assert max(image.shape) == 1024
    assert image.shape[0] == round(300 * 1024 / 2200)


@pytest.mark.django_db
def test_dewarped_preview_missing_is_404(client, surgeon_a, patient_a):
    xray = make_xray(patient_a)
    client.force_login(surgeon_a)
    url = reverse("records:xray-preview", kwargs={"pk": xray.pk})
    assert client.get(url, {"which": "dewarped"}).status_code == 404
    assert client.get(url, {"which": "../../etc"}).status_code == 404


def test_render_preview_windowing_percentiles():
    rng = np.random.default_rng(3)
    pixels = rng.normal(1000, 10, (64, 64)).astype(np.float32)
    pixels[0, 0] = 1e6  # one hot pixel must not wash the image out
    image = _decode(display_png(pixels, "MONOCHROME2", max_side=1024))
    assert 100 < image[1:, 1:].mean() < 155
    assert image[1:, 1:].std() > 30
    flat = _decode(display_png(np.full((4, 4), 7.0, np.float32), "MONOCHROME2", max_side=1024))
    assert flat.shape == (4, 4)
