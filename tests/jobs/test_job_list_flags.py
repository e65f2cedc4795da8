"""The job list flags jobs queued too long (their broker message was probably lost) and
its audit row names the patients it showed."""

from __future__ import annotations

from datetime import timedelta

from django.urls import reverse
from django.utils import timezone

from webapp.core.models import AuditEvent
from webapp.jobs.models import Job


def test_old_queued_jobs_are_flagged_and_the_list_is_audited(client, surgeon_a, patient_a, settings):
    settings.ORTHOFUSE_JOB_RESEND_AFTER_S = 300
    settings.ORTHOFUSE_JOB_STALE_AFTER_S = 120
    late = Job.objects.create(kind="diagnostic", queue="cpu", patient=patient_a, created_by=surgeon_a)
    Job.objects.filter(pk=late.pk).update(created_at=timezone.now() - timedelta(hours=1))
    fresh = Job.objects.create(kind="diagnostic", queue="cpu", patient=patient_a, created_by=surgeon_a)
    client.force_login(surgeon_a)
    page = client.get(reverse("jobs:job-list")).content.decode()
    late_row = page[page.index(f'id="job-{late.pk}"'):]
    late_row = late_row[: late_row.index("</tr>")]
    fresh_row = page[page.index(f'id="job-{fresh.pk}"'):]
    fresh_row = fresh_row[: fresh_row.index("</tr>")]
    assert "queued too long" in late_row and "queued too long" not in fresh_row
    row = AuditEvent.objects.filter(detail__startswith="job list").latest("id")
    assert patient_a.mrn in row.detail
