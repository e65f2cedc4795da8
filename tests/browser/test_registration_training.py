"""The training page in a browser: the Plotly loss curve fills in from the polled JSON
while the model trains, and the page reloads into the finished model when it is ready."""

from __future__ import annotations

import pytest

from tests.core.factories import isolated_media  # noqa: F401
from tests.review.helpers import tiny_study


def _point(step: int) -> dict:
    return {
        "step": step,
        "loss": 5.0 / step,
        "loss_ema": 5.0 / step,
        "median_error_mm": 50.0 / step,
        "seconds": 0.1 * step,
    }


@pytest.mark.browser
def test_training_page_draws_the_live_loss_curve(login_page, page_url, surgeon_a, patient_a):
    from webapp.jobs.models import Job
    from webapp.xray_registration.models import RegistrationModel

    study = tiny_study(patient_a)
    job = Job.objects.create(
        kind="train_registration_model",
        queue="gpu",
        status=Job.Status.RUNNING,
        progress=0.2,
        message="step 10/100",
        patient=patient_a,
        created_by=surgeon_a,
    )
    model = RegistrationModel.objects.create(
        study=study, job=job, training_curve=[_point(1), _point(10)]
    )

    page = login_page(surgeon_a)
    page.goto(page_url("registration:model-detail", model.pk))
    page.wait_for_function(
        "() => window.OrthoFuseRegistration && window.OrthoFuseRegistration.curvePoints === 2"
    )
    assert page.locator("#loss-curve .main-svg").count() > 0
    assert page.locator(".job-progress progress").count() == 1

    RegistrationModel.objects.filter(pk=model.pk).update(
        training_curve=[_point(1), _point(10), _point(20)]
    )
    page.wait_for_function("() => window.OrthoFuseRegistration.curvePoints === 3")

    RegistrationModel.objects.filter(pk=model.pk).update(
        status=RegistrationModel.Status.READY,
        model_json={
            "input_size": 32,
            "device": "cpu",
            "ct_fingerprint": "abc123",
            "training": {"steps_done": 20, "seconds": 2.0, "final_median_error_mm": 2.5},
        },
    )
    Job.objects.filter(pk=job.pk).update(status=Job.Status.SUCCEEDED, progress=1.0)
    page.wait_for_selector("text=abc123")  # reloaded into the ready model
    assert page.text_content("#model-status").strip() == "Ready"
    assert page.console_errors == []
