"""CT upload from the patient page: the request stages the files and queues an import job
(cpu queue) whose page shows progress; NIfTI, several DICOM files, a .zip, a multi-series
upload that asks which series to import, refusals as form errors (what the request can see)
or as the failed job's message (what the importer finds), and no trust in file names."""

from __future__ import annotations

import html
import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from tests.core.factories import isolated_media  # noqa: F401
from tests.dicomio.synth import write_series
from tests.records.jobflow import queued_job, run_job, staged_files, staged_tokens, upload_and_run
from webapp.core.models import AuditEvent
from webapp.jobs.models import Job
from webapp.records.ct_import import ImportRefused, import_ct_study
from webapp.records.models import CTStudy
from webapp.records.upload_staging import safe_suffix


def _nifti_bytes(shape=(6, 5, 4), zooms=(0.7, 0.8, 2.0), seed=0) -> tuple[bytes, np.ndarray]:
    """A tiny RAS NIfTI (array indexed (i, j, k)) in HU, gzipped."""
    import gzip

    import nibabel as nib

    data = np.random.default_rng(seed).integers(-1000, 1500, size=shape).astype(np.int16)
    affine = np.diag([*zooms, 1.0])
    affine[:3, 3] = [5.0, -7.0, 11.0]
    image = nib.Nifti1Image(data, affine)
    image.header.set_xyzt_units("mm")
    return gzip.compress(image.to_bytes()), data


def _upload_url(patient):
    return reverse("records:ct-upload", kwargs={"pk": patient.pk})


def _dicom_series(tmp_path: Path, name: str, n: int, seed: int, description: str = "synthetic"):
    rng = np.random.default_rng(seed)
    stored = rng.integers(0, 2000, size=(n, 8, 6)).astype(np.int16)
    positions = np.array([[0.0, 0.0, 2.5 * k] for k in range(n)])
    paths = write_series(tmp_path / name, stored, positions, spacing=(0.5, 0.6), shuffle_seed=seed)
    return paths, stored


def _files(paths, names=None):
    return [
        SimpleUploadedFile(names[i] if names else p.name, p.read_bytes(), "application/dicom")
        for i, p in enumerate(paths)
    ]


@pytest.mark.django_db
def test_nifti_upload_creates_study_with_lps_geometry(client, surgeon_a, patient_a):
    payload, data = _nifti_bytes()
    client.force_login(surgeon_a)
    response = client.post(
        _upload_url(patient_a),
        {"files": SimpleUploadedFile("../../etc/passwd.nii.gz", payload), "description": "tiny"},
    )
    job = queued_job(response)
    assert not CTStudy.objects.exists()  # the request only staged the file
    assert AuditEvent.objects.filter(
        action="job_start", object_id=str(job.pk), ip_address="127.0.0.1", user=surgeon_a
    ).exists()
    job = run_job(job)
    study = CTStudy.objects.get(patient=patient_a)
    assert job.result["study_id"] == study.pk
    assert job.result["result_url"] == reverse("records:study-detail", kwargs={"pk": study.pk})
    assert study.status == CTStudy.Status.READY
    assert study.description == "tiny"
    # NIfTI (i, j, k) = (6, 5, 4) -> stored (slices, rows, cols) = (4, 5, 6)
    assert study.shape == [4, 5, 6]
    np.testing.assert_allclose(study.spacing_mm, [0.7, 0.8, 2.0], atol=1e-6)
    affine = study.affine_array
    # RAS -> LPS: first two rows negated
    np.testing.assert_allclose(affine[:3, 3], [-5.0, 7.0, 11.0], atol=1e-6)
    assert study.hu_min == pytest.approx(float(data.min()), abs=0.5)
    assert study.hu_max == pytest.approx(float(data.max()), abs=0.5)
    assert "passwd" not in study.volume_file.name
    assert AuditEvent.objects.filter(
        action="create",
        object_id=str(study.pk),
        user=surgeon_a,
        detail__startswith=f"upload job #{job.pk}:",
    ).exists()
    job_page = client.get(response["Location"]).content.decode()
    assert f'href="{job.result["result_url"]}"' in job_page  # the job page links the study
    page = client.get(job.result["result_url"])
    assert page.status_code == 200
    assert b"4 \xc3\x97 5 \xc3\x97 6" in page.content  # shape shown as "4 × 5 × 6"
    assert staged_tokens() == []


@pytest.mark.django_db
def test_dicom_files_and_zip_upload(client, surgeon_a, patient_a, tmp_path):
    paths, stored = _dicom_series(tmp_path, "s1", 5, seed=1)
    client.force_login(surgeon_a)
    upload_and_run(client, _upload_url(patient_a), {"files": _files(paths)})
    study = CTStudy.objects.get(patient=patient_a)
    assert study.shape == [5, 8, 6]
    np.testing.assert_allclose(study.spacing_mm, [0.6, 0.5, 2.5], atol=1e-6)  # [di, dj, dk]
    assert study.hu_min == pytest.approx(float(stored.min()) - 1024.0)

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in paths:
            archive.write(path, arcname=f"series/{path.name}")
    upload_and_run(
        client, _upload_url(patient_a), {"files": SimpleUploadedFile("scan.zip", buffer.getvalue())}
    )
    assert CTStudy.objects.filter(patient=patient_a).count() == 2
    assert staged_tokens() == []


def _choice_job(client, patient, files):
    """Upload several series and run the job: it succeeds asking which series to import."""
    job = upload_and_run(client, _upload_url(patient), {"files": files})
    assert job.result["outcome"] == "choose_series"
    return job


@pytest.mark.django_db
def test_multi_series_upload_asks_which_series(client, surgeon_a, patient_a, tmp_path):
    first, _ = _dicom_series(tmp_path, "s1", 4, seed=2)
    second, _ = _dicom_series(tmp_path, "s2", 6, seed=3)
    client.force_login(surgeon_a)
    job = _choice_job(client, patient_a, _files(first + second))
    assert not CTStudy.objects.exists()
    choose_url = job.result["result_url"]
    token = job.params["staging"]
    assert choose_url == reverse(
        "records:ct-choose-series", kwargs={"pk": patient_a.pk, "token": token}
    )
    page = client.get(choose_url)
    assert page.status_code == 200
    assert b"holds 2 series" in page.content
    assert staged_tokens() == [token]
    # stored under generated names only
    assert staged_files(token) == [f"upload-{i:05d}.dcm" for i in range(1, 11)]
    by_slices = {row["n_slices"]: row["uid"] for row in job.result["series"]}
    assert set(by_slices) == {4, 6}

    bad = client.post(choose_url, {"series_uid": "1.2.3.not-offered"})
    assert bad.status_code == 400 and not CTStudy.objects.exists()

    follow_up = queued_job(client.post(choose_url, {"series_uid": by_slices[6]}))
    assert follow_up.params["series_uid"] == by_slices[6]
    run_job(follow_up)
    study = CTStudy.objects.get()
    assert study.shape[0] == 6 and study.series_instance_uid == by_slices[6]
    assert follow_up.result["study_id"] == study.pk
    assert staged_tokens() == []
    assert client.get(choose_url).status_code == 404  # token used up


@pytest.mark.django_db
def test_multi_series_cancel_deletes_staged_files(client, surgeon_a, patient_a, tmp_path):
    first, _ = _dicom_series(tmp_path, "s1", 3, seed=4)
    second, _ = _dicom_series(tmp_path, "s2", 3, seed=5)
    client.force_login(surgeon_a)
    job = _choice_job(client, patient_a, _files(first + second))
    assert staged_tokens() == [job.params["staging"]]
    response = client.post(job.result["result_url"], {"cancel": "1"})
    assert response.status_code == 302
    assert staged_tokens() == []
    assert not CTStudy.objects.exists()
    assert client.get(job.result["result_url"]).status_code == 404


@pytest.mark.django_db
def test_other_users_token_is_not_usable(client, surgeon_a, make_user, team_a, patient_a, tmp_path):
    first, _ = _dicom_series(tmp_path, "s1", 3, seed=6)
    second, _ = _dicom_series(tmp_path, "s2", 3, seed=7)
    client.force_login(surgeon_a)
    choose_url = _choice_job(client, patient_a, _files(first + second)).result["result_url"]
    colleague = make_user("colleague", "Surgeon", team=team_a)
    client.force_login(colleague)  # the choice belongs to the user who uploaded
    assert client.get(choose_url).status_code == 404
    assert client.post(choose_url, {"cancel": "1"}).status_code == 404
    assert len(staged_tokens()) == 1


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("name", "payload", "message"),
    [
        ("notes.txt", b"this is not a scan", "'notes.txt' is not a DICOM or NIfTI file"),
        ("empty.zip", b"PK\x05\x06" + b"\0" * 18, "'empty.zip' is not a DICOM or NIfTI file"),
    ],
)
def test_refusals_are_form_errors_and_store_nothing(
    client, surgeon_a, patient_a, settings, tmp_path, name, payload, message
):
    # the request refuses what the importer would refuse, with the importer's message
    (tmp_path / name).write_bytes(payload)
    with pytest.raises(ImportRefused) as err:
        import_ct_study(tmp_path / name, patient_a)
    assert err.value.message.replace(name, f"'{name}'", 1) == message
    client.force_login(surgeon_a)
    response = client.post(_upload_url(patient_a), {"files": SimpleUploadedFile(name, payload)})
    assert response.status_code == 400
    body = response.content.decode()
    assert '<small class="error" role="alert">' in body
    assert html.escape(message) in body
    assert "Traceback" not in body
    assert not CTStudy.objects.exists() and not Job.objects.exists()
    assert staged_tokens() == []
    media = Path(settings.MEDIA_ROOT) / "volumes"
    assert not (media.exists() and any(media.iterdir()))


@pytest.mark.django_db
def test_refusal_in_the_job_fails_it_with_the_importers_message(
    client, surgeon_a, patient_a, settings, tmp_path
):
    payload = b"\x1f\x8b\x08\x00garbage"
    staged = tmp_path / "upload-00001.nii.gz"  # the name the job reads it under
    staged.write_bytes(payload)
    with pytest.raises(ImportRefused) as err:
        import_ct_study(staged, patient_a)
    expected = err.value.message.replace(str(staged), "upload-00001.nii.gz")
    expected = expected.replace("upload-00001.nii.gz", "'broken.nii.gz'")
    assert expected.startswith("'broken.nii.gz' is not a readable NIfTI file")
    client.force_login(surgeon_a)
    url = _upload_url(patient_a)
    job = upload_and_run(
        client, url, {"files": SimpleUploadedFile("broken.nii.gz", payload)}, "failed"
    )
    assert job.error == expected
    assert "upload-00001" not in job.error and "/tmp" not in job.error
    assert not CTStudy.objects.exists()
    assert staged_tokens() == []
    media = Path(settings.MEDIA_ROOT) / "volumes"
    assert not (media.exists() and any(media.iterdir()))
    page = client.get(reverse("jobs:job-detail", kwargs={"pk": job.pk})).content.decode()
    assert html.escape(expected) in page and "Traceback" not in page


@pytest.mark.django_db
def test_mixed_zip_and_files_refused(client, surgeon_a, patient_a):
    client.force_login(surgeon_a)
    response = client.post(
        _upload_url(patient_a),
        {"files": [SimpleUploadedFile("a.zip", b"PK"), SimpleUploadedFile("b.dcm", b"x")]},
    )
    assert response.status_code == 400
    assert b"not a mix" in response.content
    assert not Job.objects.exists() and staged_tokens() == []


@pytest.mark.django_db
def test_upload_over_size_limit_refused(client, surgeon_a, patient_a, settings):
    settings.ORTHOFUSE_MAX_UPLOAD_BYTES = 1000
    client.force_login(surgeon_a)
    response = client.post(
        _upload_url(patient_a), {"files": SimpleUploadedFile("a.dcm", b"x" * 2000)}
    )
    assert response.status_code == 400
    assert b"limit" in response.content
    assert not Job.objects.exists() and staged_tokens() == []


@pytest.mark.django_db
def test_reviewer_cannot_upload(client, make_user, team_a, patient_a):
    reviewer = make_user("rev", "Reviewer", team=team_a)
    client.force_login(reviewer)
    payload, _ = _nifti_bytes()
    response = client.post(
        _upload_url(patient_a), {"files": SimpleUploadedFile("a.nii.gz", payload)}
    )
    assert response.status_code == 403
    assert not CTStudy.objects.exists()
    assert not Job.objects.exists() and staged_tokens() == []


@pytest.mark.parametrize(
    ("name", "suffix"),
    [
        ("scan.NII.GZ", ".nii.gz"),
        ("../../x.zip", ".zip"),
        ("IM0001", ""),
        ("evil.dcm.exe", ""),
        (None, ""),
    ],
)
def test_safe_suffix_keeps_only_known_suffixes(name, suffix):
    assert safe_suffix(name) == suffix


@pytest.mark.django_db
def test_refusal_names_the_users_file_escaped(client, surgeon_a, patient_a):
    client.force_login(surgeon_a)
    name = "../x/<img src=x onerror=alert(1)>.txt"
    response = client.post(
        _upload_url(patient_a), {"files": SimpleUploadedFile(name, b"not a scan")}
    )
    assert response.status_code == 400
    body = response.content.decode()
    assert "&#x27;&lt;img src=x onerror=alert(1)&gt;.txt&#x27;" in body  # shown, but escaped
    assert "<img src=x" not in body
    assert "upload-00001" not in body


def test_client_names_replace_generated_names():
    from webapp.records.upload_staging import display_name, with_client_names

    names = [display_name("C:\\scans\\IM1"), display_name("dir/IM2.dcm")]
    assert names == ["IM1", "IM2.dcm"]
    message = "upload-00002.dcm has no pixel data; upload-00001 too; upload-00009.dcm unknown"
    assert with_client_names(message, names) == (
        "'IM2.dcm' has no pixel data; 'IM1' too; upload-00009.dcm unknown"
    )
    quoted = 'cannot read "/tmp/orthofuse-import-x1/upload-00002.dcm" (C:\\w\\upload-00001)'
    assert with_client_names(quoted, names) == "cannot read \"'IM2.dcm'\" ('IM1')"
