"""Another team's job is invisible everywhere: list, detail, status JSON, cancel and the API."""

from __future__ import annotations

from unittest import mock

import pytest
from django.urls import reverse

from webapp.jobs.models import Job


@pytest.fixture
def jobs(make_job, surgeon_a, surgeon_b, patient_a, patient_b):
    return {
        "a_patient": make_job(created_by=surgeon_a, patient=patient_a),
        "a_own": make_job(created_by=surgeon_a),
        "b_patient": make_job(created_by=surgeon_b, patient=patient_b),
        "b_own": make_job(created_by=surgeon_b),
    }


@pytest.fixture(autouse=True)
def no_revoke():
    with mock.patch("webapp.jobs.services._revoke"):
        yield


def _ids(rows) -> set[int]:
    return {row["id"] for row in rows}


def test_list_page_shows_only_visible_jobs(client, surgeon_a, jobs):
    client.force_login(surgeon_a)
    response = client.get(reverse("jobs:job-list"))
    assert response.status_code == 200
    shown = {job.pk for job in response.context["jobs"]}
    assert shown == {jobs["a_patient"].pk, jobs["a_own"].pk}
    html = response.content.decode()
    assert f'data-job-id="{jobs["b_patient"].pk}"' not in html
    assert "B-0001" not in html


def test_team_mate_sees_patient_jobs_but_not_private_ones(client, make_user, team_a, jobs):
    mate = make_user("reviewer_a", "Reviewer", team=team_a)
    client.force_login(mate)
    response = client.get(reverse("jobs:job-status-list"))
    assert _ids(response.json()["jobs"]) == {jobs["a_patient"].pk}


@pytest.mark.parametrize("name", ["jobs:job-detail", "jobs:job-status"])
@pytest.mark.parametrize("which", ["b_patient", "b_own"])
def test_other_teams_job_pages_answer_404(client, surgeon_a, jobs, name, which):
    client.force_login(surgeon_a)
    response = client.get(reverse(name, args=[jobs[which].pk]))
    assert response.status_code == 404
    assert b"B-0001" not in response.content


@pytest.mark.parametrize("which", ["b_patient", "b_own"])
def test_other_teams_job_cannot_be_cancelled(client, surgeon_a, jobs, which):
    client.force_login(surgeon_a)
    response = client.post(reverse("jobs:job-cancel", args=[jobs[which].pk]))
    assert response.status_code == 404
    api = client.post(f"/api/jobs/{jobs[which].pk}/cancel/")
    assert api.status_code == 404
    job = Job.objects.get(pk=jobs[which].pk)
    assert (job.status, job.cancel_requested) == (Job.Status.QUEUED, False)


def test_status_list_drops_invisible_ids(client, surgeon_a, jobs):
    client.force_login(surgeon_a)
    ids = ",".join(str(job.pk) for job in jobs.values())
    response = client.get(reverse("jobs:job-status-list"), {"ids": ids})
    assert response.status_code == 200
    assert _ids(response.json()["jobs"]) == {jobs["a_patient"].pk, jobs["a_own"].pk}


def test_api_list_and_detail_are_scoped(client, surgeon_a, jobs):
    client.force_login(surgeon_a)
    response = client.get("/api/jobs/")
    assert response.status_code == 200
    assert _ids(response.json()["results"]) == {jobs["a_patient"].pk, jobs["a_own"].pk}
    assert client.get(f"/api/jobs/{jobs['a_patient'].pk}/").status_code == 200
    missing = client.get(f"/api/jobs/{jobs['b_patient'].pk}/")
    assert missing.status_code == 404
    assert "B-0001" not in missing.content.decode()


def test_superuser_sees_every_job(client, make_user, jobs):
    client.force_login(make_user("root", superuser=True))
    assert _ids(client.get("/api/jobs/").json()["results"]) == {job.pk for job in jobs.values()}
    assert client.get(reverse("jobs:job-detail", args=[jobs["b_own"].pk])).status_code == 200


def test_anonymous_is_sent_to_login_or_refused(client, jobs):
    page = client.get(reverse("jobs:job-list"))
    assert page.status_code == 302 and "/login/" in page["Location"]
    status = client.get(reverse("jobs:job-status", args=[jobs["a_own"].pk]))
    assert status.status_code == 302
    assert client.get("/api/jobs/").status_code in (401, 403)


def test_cancel_through_page_and_api(client, surgeon_a, jobs):
    client.force_login(surgeon_a)
    response = client.post(reverse("jobs:job-cancel", args=[jobs["a_own"].pk]))
    assert response.status_code == 302
    assert Job.objects.get(pk=jobs["a_own"].pk).status == Job.Status.CANCELLED
    api = client.post(f"/api/jobs/{jobs['a_patient'].pk}/cancel/")
    assert api.status_code == 200
    assert api.json()["status"] == "cancelled"
    again = client.post(f"/api/jobs/{jobs['a_patient'].pk}/cancel/")
    assert again.status_code == 409
    assert again.json()["detail"] == f"job #{jobs['a_patient'].pk} has already finished (cancelled)"


def test_cancel_needs_post(client, surgeon_a, jobs):
    client.force_login(surgeon_a)
    response = client.get(reverse("jobs:job-cancel", args=[jobs["a_own"].pk]))
    assert response.status_code == 405
    assert Job.objects.get(pk=jobs["a_own"].pk).status == Job.Status.QUEUED


def test_diagnostic_button_is_staff_only(
    client, surgeon_a, make_user, django_capture_on_commit_callbacks
):
    client.force_login(surgeon_a)
    assert client.post(reverse("jobs:job-diagnostic")).status_code == 404
    assert not Job.objects.filter(kind="diagnostic_sleep", created_by=surgeon_a).exists()
    admin = make_user("root", superuser=True)
    client.force_login(admin)
    with mock.patch("webapp.jobs.tasks.run_job.apply_async") as send:
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(reverse("jobs:job-diagnostic"), {"queue": "gpu"})
    job = Job.objects.get(created_by=admin)
    assert response.status_code == 302 and response["Location"] == reverse(
        "jobs:job-detail", args=[job.pk]
    )
    assert job.kind == "diagnostic_gpu"
    assert send.call_args.kwargs["queue"] == "gpu"
