"""In a real browser, job progress bars follow the Job row without a page reload."""

from __future__ import annotations

import pytest
from django.utils import timezone

from webapp.jobs.models import Job

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120)]


def _bar_value(page, job: Job):
    return page.eval_on_selector(
        f'.job-progress[data-job-id="{job.pk}"] progress', "bar => bar.getAttribute('value')"
    )


def test_list_bars_update_live(login_page, page_url, surgeon_a, patient_a):
    running = Job.objects.create(
        kind="diagnostic_sleep",
        created_by=surgeon_a,
        patient=patient_a,
        status=Job.Status.RUNNING,
        progress=0.1,
        message="step 1 of 10",
        started_at=timezone.now(),
    )
    queued = Job.objects.create(kind="diagnostic_sleep", created_by=surgeon_a)
    page = login_page(surgeon_a)
    pageerrors: list[str] = []
    page.on("pageerror", lambda error: pageerrors.append(str(error)))
    page.goto(page_url("jobs:job-list"))
    page.evaluate("window.__sameDocument = true")
    assert float(_bar_value(page, running)) == pytest.approx(0.1)
    assert _bar_value(page, queued) is None  # indeterminate while queued

    Job.objects.filter(pk=running.pk).update(progress=0.6, message="step 6 of 10")
    Job.objects.filter(pk=queued.pk).update(status=Job.Status.RUNNING, progress=0.3)
    page.wait_for_function(
        f"""() => {{
            const el = document.querySelector('.job-progress[data-job-id="{running.pk}"]');
            return el.querySelector('progress').value > 0.55
                && el.querySelector('.job-message').textContent === 'step 6 of 10';
        }}""",
        timeout=15_000,
    )
    assert float(_bar_value(page, queued)) == pytest.approx(0.3)
    assert page.text_content(f'.job-progress[data-job-id="{running.pk}"] .job-percent') == "60%"

    Job.objects.filter(pk=running.pk).update(
        status=Job.Status.FAILED, error="disk full\ntraceback", finished_at=timezone.now()
    )
    page.wait_for_function(
        f"""() => document.querySelector(
            '.job-progress[data-job-id="{running.pk}"]').dataset.status === 'failed'""",
        timeout=15_000,
    )
    error = page.locator(f'.job-progress[data-job-id="{running.pk}"] .job-error')
    assert error.is_visible() and error.text_content() == "disk full"
    assert page.text_content(f'.job-progress[data-job-id="{running.pk}"] .job-status') == "Failed"
    assert page.evaluate("window.__sameDocument") is True  # no reload happened
    assert pageerrors == []


def test_detail_page_fills_result_and_timings_when_the_job_finishes(
    login_page, page_url, surgeon_a
):
    job = Job.objects.create(
        kind="diagnostic_sleep",
        created_by=surgeon_a,
        status=Job.Status.RUNNING,
        progress=0.5,
        started_at=timezone.now(),
    )
    page = login_page(surgeon_a)
    finished_events: list[object] = []
    page.expose_function("jobFinished", lambda detail: finished_events.append(detail))
    page.goto(page_url("jobs:job-detail", job.pk))
    page.evaluate(
        "document.addEventListener('orthofuse:job-finished', e => window.jobFinished(e.detail))"
    )
    assert page.locator(f'[data-job-hide-when-finished="{job.pk}"]').is_visible()

    Job.objects.filter(pk=job.pk).update(
        status=Job.Status.SUCCEEDED,
        progress=1.0,
        result={"steps": 10, "ok": True},
        timings={"sleep": 2.5, "load": 0.25},
        finished_at=timezone.now(),
    )
    page.wait_for_function(
        f"""() => document.querySelector('[data-job-result-for="{job.pk}"]')
            .textContent.includes('"steps": 10')""",
        timeout=15_000,
    )
    rows = page.locator(f'[data-job-timings-for="{job.pk}"] tr')
    assert rows.count() == 2
    assert rows.nth(0).text_content().strip().startswith("sleep")
    assert "2.500" in rows.nth(0).text_content()
    assert not page.locator(f'[data-job-hide-when-finished="{job.pk}"]').is_visible()
    page.wait_for_timeout(200)
    assert len(finished_events) == 1
    assert finished_events[0]["result"] == {"steps": 10, "ok": True}
