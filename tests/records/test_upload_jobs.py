"""Uploads run as import jobs on the cpu queue: the request stages the files and queues the job,
the job imports them through the importers (study or X-ray created), reports progress that the
job page and its status JSON show, is idempotent when run again, stores nothing when it fails,
removes its staging, and only the patient's care teams see it (pages and API)."""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import OperationalError
from django.urls import reverse

from tests.core.factories import isolated_media  # noqa: F401
from tests.dicomio.synth import write_series, xray_dataset
from tests.records.jobflow import job_page, queued_job, run_job, staged_tokens, upload_and_run
from webapp.jobs.models import Job
from webapp.records import jobs as import_jobs
from webapp.records.models import CTStudy, XrayImage
from webapp.records.upload_staging import StagedUpload, purge_stale_staging, stage_uploads


def _nifti(seed: int = 0) -> bytes:
    import nibabel as nib

    data = np.random.default_rng(seed).integers(-1000, 1500, size=(6, 5, 4)).astype(np.int16)
    return gzip.compress(nib.Nifti1Image(data, np.diag([0.7, 0.8, 2.0, 1.0])).to_bytes())


def _xray_dicom(modality: str = "XA") -> bytes:
    pixels = np.tile(np.linspace(0, 4000, 50), (30, 1)).astype(np.uint16)
    buffer = io.BytesIO()
    xray_dataset(pixels, modality=modality).save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def _ct_url(patient) -> str:
    return reverse("records:ct-upload", kwargs={"pk": patient.pk})


def _xray_url(patient) -> str:
    return reverse("records:xray-upload", kwargs={"pk": patient.pk})


def _volume_files(settings) -> list[Path]:
    folder = Path(settings.MEDIA_ROOT) / "volumes"
    return sorted(folder.iterdir()) if folder.exists() else []


def _xray_files(settings) -> list[Path]:
    folder = Path(settings.MEDIA_ROOT) / "xrays"
    return sorted(folder.iterdir()) if folder.exists() else []


@pytest.mark.django_db
def test_ct_upload_becomes_a_queued_cpu_job_then_a_study(client, surgeon_a, patient_a):
    client.force_login(surgeon_a)
    job = queued_job(
        client.post(_ct_url(patient_a), {"files": SimpleUploadedFile("a.nii.gz", _nifti())})
    )
    assert job.kind == "import_ct" and job.patient == patient_a and job.created_by == surgeon_a
    assert job.params["names"] == ["a.nii.gz"]
    assert job.params["files"] == [f"staging/uploads/{job.params['staging']}/upload-00001.nii.gz"]
    assert staged_tokens() == [job.params["staging"]]
    page = client.get(job_page(job)).content.decode()
    assert "waiting for a worker" in page and "Cancel job" in page
    run_job(job)
    study = CTStudy.objects.get()
    assert job.result == {
        "outcome": "imported",
        "study_id": study.pk,
        "shape": [4, 5, 6],
        "result_url": reverse("records:study-detail", kwargs={"pk": study.pk}),
        "result_label": "Open the CT study",
    }
    assert job.progress == 1.0 and job.message == f"CT study #{study.pk} imported"
    assert set(job.timings) >= {"fetch", "import"}
    assert staged_tokens() == []


@pytest.mark.django_db
def test_xray_upload_becomes_a_job_then_an_xray(client, surgeon_a, patient_a):
    client.force_login(surgeon_a)
    data = {"file": SimpleUploadedFile("shot.dcm", _xray_dicom()), "description": "AP"}
    job = upload_and_run(client, _xray_url(patient_a), data)
    xray = XrayImage.objects.get()
    assert job.kind == "import_xray" and job.queue == "cpu"
    assert job.result["xray_id"] == xray.pk and xray.description == "AP"
    assert job.message == f"X-ray #{xray.pk} imported"
    assert staged_tokens() == []


@pytest.mark.django_db
def test_progress_is_visible_while_the_import_runs(client, surgeon_a, patient_a, monkeypatch):
    client.force_login(surgeon_a)
    job = queued_job(
        client.post(_ct_url(patient_a), {"files": SimpleUploadedFile("a.nii.gz", _nifti())})
    )
    seen = []
    real_import = import_jobs.import_ct_study

    def watched(*args, **kwargs):
        seen.append(client.get(reverse("jobs:job-status", args=[job.pk])).json())
        return real_import(*args, **kwargs)

    monkeypatch.setattr(import_jobs, "import_ct_study", watched)
    run_job(job)
    [during] = seen
    assert during["status"] == "running"
    assert during["progress"] == pytest.approx(0.2)
    assert during["message"] == "reading and assembling the CT volume"
    after = client.get(reverse("jobs:job-status", args=[job.pk])).json()
    assert after["status"] == "succeeded" and after["progress"] == 1.0
    assert after["result"]["study_id"] == CTStudy.objects.get().pk


@pytest.mark.django_db
def test_a_second_run_after_success_imports_nothing_twice(client, surgeon_a, patient_a, settings):
    client.force_login(surgeon_a)
    job = upload_and_run(
        client, _ct_url(patient_a), {"files": SimpleUploadedFile("a.nii.gz", _nifti())}
    )
    study = CTStudy.objects.get()
    files = _volume_files(settings)
    assert len(files) == 1
    assert run_job(job, "skipped").status == Job.Status.SUCCEEDED  # a duplicate message
    # the worker died after the import committed: the job is delivered again from the start
    Job.objects.filter(pk=job.pk).update(status=Job.Status.QUEUED, attempts=1)
    again = run_job(job)
    assert again.result["study_id"] == study.pk
    assert CTStudy.objects.count() == 1 and _volume_files(settings) == files


@pytest.mark.django_db
def test_a_rerun_before_cleanup_finds_its_study_and_removes_the_staging(
    client, surgeon_a, patient_a, settings, monkeypatch
):
    client.force_login(surgeon_a)
    data = {"file": SimpleUploadedFile("shot.dcm", _xray_dicom())}
    job = queued_job(client.post(_xray_url(patient_a), data))
    real_discard = StagedUpload.discard
    monkeypatch.setattr(StagedUpload, "discard", lambda self: None)  # died before cleaning up
    run_job(job)
    assert staged_tokens() == [job.params["staging"]]
    monkeypatch.setattr(StagedUpload, "discard", real_discard)
    Job.objects.filter(pk=job.pk).update(status=Job.Status.QUEUED, attempts=1)
    assert run_job(job).result["xray_id"] == XrayImage.objects.get().pk
    assert len(_xray_files(settings)) == 1
    assert staged_tokens() == []


@pytest.mark.django_db
def test_a_failure_after_the_volume_is_written_leaves_nothing(
    client, surgeon_a, patient_a, settings, monkeypatch
):
    def broken_link(job, obj, *, detail):
        raise RuntimeError("the audit link could not be written")

    monkeypatch.setattr(import_jobs, "_linked", broken_link)
    client.force_login(surgeon_a)
    url = _ct_url(patient_a)
    job = upload_and_run(client, url, {"files": SimpleUploadedFile("a.nii.gz", _nifti())}, "failed")
    assert job.error.startswith("internal error: RuntimeError: the audit link could not be written")
    assert not CTStudy.objects.exists() and _volume_files(settings) == []
    assert staged_tokens() == []


@pytest.mark.django_db
def test_a_transient_error_keeps_the_staging_for_the_retry(
    client, surgeon_a, patient_a, settings, monkeypatch
):
    real_import = import_jobs.import_ct_study

    def database_gone(*args, **kwargs):
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(import_jobs, "import_ct_study", database_gone)
    client.force_login(surgeon_a)
    job = queued_job(
        client.post(_ct_url(patient_a), {"files": SimpleUploadedFile("a.nii.gz", _nifti())})
    )
    from webapp.jobs.runner import execute_job

    with pytest.raises(OperationalError):
        execute_job(job.pk, worker="test")
    job.refresh_from_db()
    assert job.status == Job.Status.QUEUED and job.attempts == 0
    assert staged_tokens() == [job.params["staging"]] and not CTStudy.objects.exists()
    monkeypatch.setattr(import_jobs, "import_ct_study", real_import)
    run_job(job)
    assert CTStudy.objects.count() == 1 and len(_volume_files(settings)) == 1
    assert staged_tokens() == []


@pytest.mark.django_db
def test_refused_ct_fails_the_job_with_the_message_and_stores_nothing(
    client, surgeon_a, patient_a, settings, tmp_path
):
    stored = np.random.default_rng(3).integers(0, 900, size=(3, 8, 6)).astype(np.int16)
    paths = write_series(tmp_path / "mr", stored, np.array([[0, 0, z] for z in (0.0, 2.0, 4.0)]))
    for path in paths:  # the same series, but MR
        import pydicom

        ds = pydicom.dcmread(path)
        ds.Modality = "MR"
        ds.save_as(path)
    files = [SimpleUploadedFile(f"IM{i}", p.read_bytes()) for i, p in enumerate(paths)]
    client.force_login(surgeon_a)
    job = upload_and_run(client, _ct_url(patient_a), {"files": files}, "failed")
    assert job.error == "not a CT image (modality MR)"
    assert not CTStudy.objects.exists() and _volume_files(settings) == []
    assert staged_tokens() == []
    status = client.get(reverse("jobs:job-status", args=[job.pk])).json()
    assert status["status"] == "failed" and status["error"] == "not a CT image (modality MR)"


@pytest.mark.django_db
def test_missing_staged_files_fail_the_job_clearly(client, surgeon_a, patient_a):
    client.force_login(surgeon_a)
    job = queued_job(
        client.post(_xray_url(patient_a), {"file": SimpleUploadedFile("a.dcm", _xray_dicom())})
    )
    StagedUpload.from_params(job.params).discard()
    run_job(job, "failed")
    assert job.error == "the uploaded files are no longer available; upload them again"
    assert not XrayImage.objects.exists()


@pytest.mark.django_db
def test_only_the_patients_care_team_sees_the_job(
    client, surgeon_a, surgeon_b, make_user, team_a, patient_a
):
    client.force_login(surgeon_a)
    job = queued_job(
        client.post(_ct_url(patient_a), {"files": SimpleUploadedFile("a.nii.gz", _nifti())})
    )
    urls = [job_page(job), reverse("jobs:job-status", args=[job.pk]), f"/api/jobs/{job.pk}/"]
    colleague = make_user("colleague", "Surgeon", team=team_a)
    client.force_login(colleague)
    assert [client.get(url).status_code for url in urls] == [200, 200, 200]
    client.force_login(surgeon_b)
    assert [client.get(url).status_code for url in urls] == [404, 404, 404]
    listed = client.get(reverse("jobs:job-status-list"), {"ids": str(job.pk)}).json()
    assert str(job.pk) not in str(listed)


@pytest.mark.django_db
def test_api_uploads_answer_202_with_the_job(client, surgeon_a, patient_a):
    client.force_login(surgeon_a)
    response = client.post(
        f"/api/patients/{patient_a.pk}/ct-upload/",
        {"files": [SimpleUploadedFile("a.nii.gz", _nifti())], "description": "api"},
    )
    assert response.status_code == 202, response.content
    body = response.json()
    job = Job.objects.get(pk=body["job_id"])
    assert body == {
        "job_id": job.pk,
        "status": "queued",
        "job": f"/api/jobs/{job.pk}/",
        "status_url": reverse("jobs:job-status", args=[job.pk]),
        "url": job_page(job),
    }
    assert response["Location"] == body["job"]
    run_job(job)
    assert CTStudy.objects.get().description == "api"
    api_job = client.get(body["job"]).json()
    assert (
        api_job["status"] == "succeeded" and api_job["result"]["study_id"] == job.result["study_id"]
    )

    response = client.post(
        f"/api/patients/{patient_a.pk}/xray-upload/",
        {"file": SimpleUploadedFile("shot.dcm", _xray_dicom())},
    )
    assert response.status_code == 202, response.content
    run_job(Job.objects.get(pk=response.json()["job_id"]))
    assert XrayImage.objects.count() == 1


@pytest.mark.django_db
def test_api_upload_refusals(client, surgeon_a, patient_a, patient_b, make_user, team_a):
    client.force_login(surgeon_a)
    bad = client.post(
        f"/api/patients/{patient_a.pk}/xray-upload/",
        {"file": SimpleUploadedFile("notes.txt", b"not an image")},
    )
    assert bad.status_code == 400
    assert bad.json() == {"file": ["'notes.txt' is not a DICOM or PNG file"]}
    png = client.post(
        f"/api/patients/{patient_a.pk}/xray-upload/",
        {"file": SimpleUploadedFile("x.png", b"\x89PNG\r\n\x1a\n")},
    )
    assert png.status_code == 400 and "carm" in png.json()
    other = client.post(
        f"/api/patients/{patient_b.pk}/ct-upload/",
        {"files": [SimpleUploadedFile("a.nii.gz", _nifti())]},
    )
    assert other.status_code == 404
    client.force_login(make_user("rev", "Reviewer", team=team_a))
    denied = client.post(
        f"/api/patients/{patient_a.pk}/ct-upload/",
        {"files": [SimpleUploadedFile("a.nii.gz", _nifti())]},
    )
    assert denied.status_code == 403
    assert not Job.objects.exists() and staged_tokens() == []


@pytest.mark.django_db
def test_stale_staging_is_purged_but_not_that_of_waiting_jobs(settings):
    kept = stage_uploads([SimpleUploadedFile("a.dcm", b"a")])
    lost = stage_uploads([SimpleUploadedFile("b.dcm", b"b")])
    purge_stale_staging(keep={kept.token}, max_age_s=3600)
    assert staged_tokens() == sorted([kept.token, lost.token])  # both still fresh
    purge_stale_staging(keep={kept.token}, max_age_s=-1)
    assert staged_tokens() == [kept.token]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("kind", "reader", "limit"),
    [
        ("ct", "webapp.records.ct_import.load_ct", 1800),
        ("xray", "webapp.records.xray_import.read_xray", 300),
    ],
)
def test_the_time_limit_is_not_reported_as_a_bad_input(
    client, surgeon_a, patient_a, monkeypatch, kind, reader, limit
):
    from celery.exceptions import SoftTimeLimitExceeded

    def too_slow(*args, **kwargs):
        raise SoftTimeLimitExceeded()

    monkeypatch.setattr(reader, too_slow)
    client.force_login(surgeon_a)
    if kind == "ct":
        response = client.post(
            _ct_url(patient_a), {"files": SimpleUploadedFile("a.nii.gz", _nifti())}
        )
    else:
        response = client.post(
            _xray_url(patient_a), {"file": SimpleUploadedFile("a.dcm", _xray_dicom())}
        )
    job = run_job(queued_job(response), "failed")
    assert job.error == f"time limit of {limit} s exceeded"
    assert not CTStudy.objects.exists() and not XrayImage.objects.exists()
    assert staged_tokens() == []


@pytest.mark.django_db
def test_the_next_upload_removes_the_staging_of_a_job_cancelled_before_it_ran(
    client, surgeon_a, patient_a, tmp_path
):
    from webapp.jobs.services import cancel_job

    client.force_login(surgeon_a)
    cancelled = queued_job(
        client.post(_ct_url(patient_a), {"files": SimpleUploadedFile("a.nii.gz", _nifti())})
    )
    waiting = queued_job(
        client.post(_xray_url(patient_a), {"file": SimpleUploadedFile("a.dcm", _xray_dicom())})
    )
    series = []
    for name, seed in (("s1", 1), ("s2", 2)):
        stored = np.random.default_rng(seed).integers(0, 900, size=(3, 8, 6)).astype(np.int16)
        series += write_series(
            tmp_path / name, stored, np.array([[0, 0, z] for z in (0.0, 2.0, 4.0)])
        )
    files = [SimpleUploadedFile(p.name, p.read_bytes()) for p in series]
    choice = upload_and_run(client, _ct_url(patient_a), {"files": files})
    assert choice.result["outcome"] == "choose_series"
    cancel_job(cancelled, surgeon_a)
    assert run_job(cancelled, "skipped").status == Job.Status.CANCELLED
    tokens = {job.params["staging"] for job in (cancelled, waiting, choice)}
    assert set(staged_tokens()) == tokens

    latest = queued_job(
        client.post(_ct_url(patient_a), {"files": SimpleUploadedFile("b.nii.gz", _nifti(1))})
    )
    assert set(staged_tokens()) == tokens - {cancelled.params["staging"]} | {
        latest.params["staging"]
    }
    run_job(waiting)
    assert XrayImage.objects.count() == 1
