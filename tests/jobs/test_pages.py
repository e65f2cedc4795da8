"""Job pages: live progress bars, detail with timings, result and the one-line error, JSON."""

from __future__ import annotations

import json

import pytest
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from webapp.jobs.models import Job


@pytest.fixture
def logged_in(client, surgeon_a):
    client.force_login(surgeon_a)
    return client


def test_list_has_a_live_bar_per_job(logged_in, make_job, surgeon_a, patient_a):
    running = make_job(
        created_by=surgeon_a,
        patient=patient_a,
        status=Job.Status.RUNNING,
        progress=0.25,
        message="step 1 of 4",
    )
    queued = make_job(created_by=surgeon_a)
    html = logged_in.get(reverse("jobs:job-list")).content.decode()
    assert f'data-job-id="{running.pk}"' in html and f'data-job-id="{queued.pk}"' in html
    assert 'value="0.2500"' in html and "25%" in html and "step 1 of 4" in html
    assert f'data-status-list-url="{reverse("jobs:job-status-list")}"' in html
    assert "js/jobs.js" in html
    assert "A-0001" in html


def test_list_filters_by_status(logged_in, make_job, surgeon_a):
    done = make_job(created_by=surgeon_a, status=Job.Status.SUCCEEDED)
    make_job(created_by=surgeon_a)
    response = logged_in.get(reverse("jobs:job-list"), {"status": "succeeded"})
    assert [job.pk for job in response.context["jobs"]] == [done.pk]


def test_detail_shows_timings_result_and_only_the_error_line(logged_in, make_job, surgeon_a):
    ok = make_job(
        created_by=surgeon_a,
        status=Job.Status.SUCCEEDED,
        progress=1.0,
        timings={"sleep": 1.23456, "load": 0.5},
        result={"steps": 4, "flag": True},
        started_at=timezone.now(),
        finished_at=timezone.now(),
    )
    html = logged_in.get(reverse("jobs:job-detail", args=[ok.pk])).content.decode()
    assert "1.235" in html and "0.500" in html and html.index("sleep") < html.index("load")
    assert "&quot;flag&quot;: true" in html  # JSON, not a Python repr
    assert "Cancel job" not in html

    failed = make_job(
        created_by=surgeon_a,
        status=Job.Status.FAILED,
        error="internal error: KeyError: 'x'\n\nTraceback (most recent call last):\n  secret frame",
    )
    html = logged_in.get(reverse("jobs:job-detail", args=[failed.pk])).content.decode()
    assert "internal error: KeyError: &#x27;x&#x27;" in html
    assert "Traceback" not in html and "secret frame" not in html


def test_detail_of_unfinished_job_offers_cancel(logged_in, make_job, surgeon_a):
    job = make_job(created_by=surgeon_a, status=Job.Status.RUNNING)
    html = logged_in.get(reverse("jobs:job-detail", args=[job.pk])).content.decode()
    assert reverse("jobs:job-cancel", args=[job.pk]) in html and "Cancel job" in html


def test_status_json(logged_in, make_job, surgeon_a):
    job = make_job(
        created_by=surgeon_a,
        status=Job.Status.RUNNING,
        progress=0.5,
        message="half",
        live={"loss": [1.0, 0.5]},
        timings={"a": 1.0},
    )
    data = logged_in.get(reverse("jobs:job-status", args=[job.pk])).json()
    assert data["status"] == "running" and data["progress"] == 0.5 and data["message"] == "half"
    assert data["live"] == {"loss": [1.0, 0.5]} and data["timings"] == {"a": 1.0}
    assert data["is_finished"] is False and data["result"] is None
    assert data["status_url"] == reverse("jobs:job-status", args=[job.pk])
    listing = logged_in.get(reverse("jobs:job-status-list"), {"ids": str(job.pk)}).json()
    assert [row["id"] for row in listing["jobs"]] == [job.pk]
    assert "result" not in listing["jobs"][0]  # the polling payload stays small


def test_status_list_refuses_bad_ids(logged_in):
    response = logged_in.get(reverse("jobs:job-status-list"), {"ids": "1,two"})
    assert response.status_code == 400
    assert response.json() == {"detail": "ids must be comma-separated job numbers"}


def test_progress_include_renders_alone(make_job):
    job = make_job(status=Job.Status.FAILED, progress=0.5, error="boom\ntrace")
    html = render_to_string("jobs/_progress.html", {"job": job})
    assert f'data-job-id="{job.pk}"' in html and 'data-status="failed"' in html
    assert "boom" in html and "trace" not in html
    queued = render_to_string("jobs/_progress.html", {"job": make_job()})
    assert '<progress max="1" aria-label' in queued  # indeterminate bar while queued


def test_api_detail_fields(logged_in, make_job, surgeon_a, patient_a):
    job = make_job(
        created_by=surgeon_a, patient=patient_a, status=Job.Status.FAILED, error="bad\ntrace"
    )
    data = logged_in.get(f"/api/jobs/{job.pk}/").json()
    assert data["error"] == "bad"
    assert data["created_by"] == "surgeon_a" and data["patient"] == patient_a.pk
    assert json.dumps(data)  # plain JSON
    assert logged_in.get("/api/jobs/", {"status": "bogus"}).status_code == 400
    assert logged_in.get("/api/jobs/", {"status": "failed"}).json()["count"] == 1


def test_viewing_a_patient_job_is_audited(logged_in, make_job, surgeon_a, patient_a):
    from webapp.core.models import AuditEvent

    job = make_job(created_by=surgeon_a, patient=patient_a)
    own = make_job(created_by=surgeon_a)
    logged_in.get(reverse("jobs:job-detail", args=[job.pk]))
    logged_in.get(f"/api/jobs/{job.pk}/")
    logged_in.get(reverse("jobs:job-detail", args=[own.pk]))  # no patient: nothing to audit
    events = AuditEvent.objects.filter(action="view", object_type="Job")
    assert sorted(event.object_id for event in events) == [str(job.pk), str(job.pk)]
    assert {event.patient_mrn for event in events} == {"A-0001"}
    assert {event.user for event in events} == {surgeon_a}


def test_admin_lists_jobs_and_cancels_them(client, make_user, make_job):
    from unittest import mock

    admin = make_user("root", superuser=True)
    queued = make_job()
    done = make_job(status=Job.Status.SUCCEEDED)
    client.force_login(admin)
    assert client.get("/admin/jobs/job/").status_code == 200
    assert client.get(f"/admin/jobs/job/{queued.pk}/change/").status_code == 200
    with mock.patch("webapp.jobs.services._revoke"):
        response = client.post(
            "/admin/jobs/job/",
            {"action": "cancel_selected", "_selected_action": [queued.pk, done.pk]},
        )
    assert response.status_code == 302
    assert Job.objects.get(pk=queued.pk).status == Job.Status.CANCELLED
    assert Job.objects.get(pk=done.pk).status == Job.Status.SUCCEEDED
