"""Test helpers for uploads that run as import jobs: post the form, follow the redirect to the
job page, run the job as a cpu-queue worker would (``execute_job``, no broker) and return it."""

from __future__ import annotations

from django.core.files.storage import default_storage
from django.urls import resolve, reverse

from webapp.jobs.models import Job
from webapp.jobs.runner import execute_job
from webapp.records.upload_staging import STAGING_PREFIX


def queued_job(response) -> Job:
    """The import job an upload response redirected to (its page), still waiting on cpu."""
    assert response.status_code == 302, response.content[-3000:]
    match = resolve(response["Location"])
    assert match.view_name == "jobs:job-detail", response["Location"]
    job = Job.objects.get(pk=match.kwargs["pk"])
    assert job.status == Job.Status.QUEUED and job.queue == "cpu"
    return job


def run_job(job: Job, expect: str = "succeeded") -> Job:
    """Run ``job`` once in this process and return it refreshed; ``expect`` is the outcome."""
    outcome = execute_job(job.pk, worker="test")
    job.refresh_from_db()
    assert outcome == expect, (outcome, job.error)
    return job


def upload_and_run(client, url: str, data: dict, expect: str = "succeeded") -> Job:
    return run_job(queued_job(client.post(url, data)), expect)


def staged_tokens() -> list[str]:
    """Staged upload folders left in storage."""
    try:
        folders, _files = default_storage.listdir(STAGING_PREFIX)
    except FileNotFoundError:
        return []
    return sorted(folders)


def staged_files(token: str) -> list[str]:
    return sorted(default_storage.listdir(f"{STAGING_PREFIX}/{token}")[1])


def job_page(job: Job) -> str:
    return reverse("jobs:job-detail", kwargs={"pk": job.pk})
