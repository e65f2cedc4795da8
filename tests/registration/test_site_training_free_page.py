"""The registration page says which mode ran and which start won, and a refused shot says
why and what to try, in words a surgeon understands."""

from __future__ import annotations

from django.urls import reverse

from tests.core.factories import isolated_media  # noqa: F401
from tests.review.helpers import finished_registration, simulated_xray, tiny_study


def test_training_free_result_names_its_mode_and_start(client, patient_a, surgeon_a):
    reg = finished_registration(simulated_xray(patient_a), tiny_study(patient_a))
    reg.quality = {**reg.quality, "mode": "training-free", "start": "library"}
    reg.save()
    client.force_login(surgeon_a)
    page = client.get(reverse("registration:registration-detail", args=[reg.pk])).content.decode()
    assert 'id="reg-mode"' in page and "training-free (no trained model yet)" in page
    assert "training-free (DRR library and header angles, no network)" in page
    assert '<td id="reg-start">library</td>' in page


def test_refused_shot_names_the_reason_and_what_to_try(client, patient_a, surgeon_a):
    reg = finished_registration(simulated_xray(patient_a), tiny_study(patient_a), status="failed")
    reg.message = "the CT does not match the image at the best pose found"
    reg.quality = {"failed_check": "similarity", "mode": "training-free"}
    reg.save()
    client.force_login(surgeon_a)
    page = client.get(reverse("registration:registration-detail", args=[reg.pk])).content.decode()
    assert "Registration refused: the CT does not match the image" in page
    assert 'id="reg-advice"' in page and "a wider field of view with more bone" in page


def test_the_engine_advice_stored_with_the_run_is_shown(patient_a):
    from registration.engine.quality import advice_for
    from webapp.xray_registration.views import failure_advice

    reg = finished_registration(simulated_xray(patient_a), tiny_study(patient_a), status="failed")
    reg.stages = {"quality": {"failed_check": "consistency", "advice": advice_for("consistency")}}
    assert "second view at another angle" in failure_advice(reg)
    reg.stages, reg.quality = {}, {"failed_check": "never-heard-of"}
    assert "C-arm angles" in failure_advice(reg)
