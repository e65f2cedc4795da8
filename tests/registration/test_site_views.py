"""Registration pages and API: buttons start jobs, refusals are clear, another care team
gets 404 everywhere, only surgeons start training/registration."""

from __future__ import annotations

import pytest
from django.urls import reverse

from tests.core.factories import isolated_media  # noqa: F401
from tests.review.helpers import finished_registration, simulated_xray, tiny_study


@pytest.fixture
def scene(patient_a):
    from webapp.xray_registration.models import RegistrationModel

    study = tiny_study(patient_a)
    xray = simulated_xray(patient_a)
    model = RegistrationModel.objects.create(
        study=study,
        status=RegistrationModel.Status.READY,
        training_curve=[
            {"step": 1, "loss": 3.0, "loss_ema": 3.0, "median_error_mm": 40.0, "seconds": 0.1}
        ],
    )
    reg = finished_registration(xray, study)
    reg.model = model
    reg.save()
    return {"study": study, "xray": xray, "model": model, "reg": reg}


def _urls(scene) -> list[tuple[str, str]]:
    s = scene
    return [
        ("get", reverse("registration:model-detail", args=[s["model"].pk])),
        ("get", reverse("registration:model-curve", args=[s["model"].pk])),
        ("post", reverse("registration:model-cancel", args=[s["model"].pk])),
        ("post", reverse("registration:study-prepare", args=[s["study"].pk])),
        ("post", reverse("registration:xray-register", args=[s["xray"].pk])),
        ("get", reverse("registration:registration-detail", args=[s["reg"].pk])),
        ("get", reverse("registration:registration-image", args=[s["reg"].pk, "overlay"])),
        ("get", reverse("registration:registration-image", args=[s["reg"].pk, "drr"])),
        ("get", reverse("registration:registration-image", args=[s["reg"].pk, "xray"])),
        ("get", f"/api/registrations/{s['reg'].pk}/"),
        ("post", f"/api/registrations/{s['reg'].pk}/review/"),
        ("post", f"/api/registrations/{s['reg'].pk}/landmarks/"),
        ("get", f"/api/registration-models/{s['model'].pk}/"),
        ("get", reverse("review:registration", args=[s["reg"].pk])),
        ("post", reverse("review:decide", args=[s["reg"].pk])),
        ("post", reverse("review:landmark-add", args=[s["reg"].pk])),
        ("get", reverse("review:patient", args=[s["study"].patient_id])),
    ]


def test_other_care_team_gets_404_everywhere(client, scene, make_user, team_b):
    from webapp.xray_registration.models import Registration, RegistrationModel

    outsider = make_user("outsider", "Surgeon", team=team_b)
    outsider.groups.add(*make_user("helper", "Reviewer").groups.all())
    client.force_login(outsider)
    for method, url in _urls(scene):
        response = getattr(client, method)(url)
        assert response.status_code == 404, (method, url, response.status_code)
    assert client.get("/api/registrations/").json()["count"] == 0
    assert client.get("/api/registration-models/").json()["count"] == 0
    assert RegistrationModel.objects.count() == 1 and Registration.objects.count() == 1


def test_surgeon_pages_and_buttons(client, scene, surgeon_a, django_capture_on_commit_callbacks):
    from webapp.xray_registration.models import Registration, RegistrationModel

    client.force_login(surgeon_a)
    scene["reg"].quality = {**scene["reg"].quality, "local_similarity": 0.934}
    scene["reg"].save(update_fields=["quality"])
    page = client.get(reverse("registration:registration-detail", args=[scene["reg"].pk]))
    assert page.status_code == 200
    html = page.content.decode()
    assert 'id="overlay-opacity"' in html and 'id="reg-drr"' in html and "True mTRE" in html
    assert 'id="local-similarity">0.934<' in html
    for which in ("overlay", "drr", "xray"):
        img = client.get(reverse("registration:registration-image", args=[scene["reg"].pk, which]))
        assert img.status_code == 200 and img.content[:4] == b"\x89PNG", which
    assert (
        client.get(
            reverse("registration:registration-image", args=[scene["reg"].pk, "other"])
        ).status_code
        == 404
    )
    curve = client.get(reverse("registration:model-curve", args=[scene["model"].pk])).json()
    assert curve["status"] == "ready" and curve["curve"][0]["loss"] == 3.0
    assert (
        client.get(reverse("registration:model-detail", args=[scene["model"].pk])).status_code
        == 200
    )

    with django_capture_on_commit_callbacks(execute=False):
        r = client.post(
            reverse("registration:study-prepare", args=[scene["study"].pk]), {"preset": "quick"}
        )
    model = RegistrationModel.objects.filter(status="training").get()
    assert r.status_code == 302 and r.url == reverse("registration:model-detail", args=[model.pk])
    with django_capture_on_commit_callbacks(execute=False):
        r = client.post(reverse("registration:xray-register", args=[scene["xray"].pk]))
    new = Registration.objects.filter(status="running").get()
    assert r.url == reverse("registration:registration-detail", args=[new.pk])
    assert new.model_id == scene["model"].pk and new.job.kind == "register_xray"
    running = client.get(r.url).content.decode()
    assert "job-progress" in running


def test_register_without_a_ct_says_so(client, patient_a, surgeon_a):
    from webapp.xray_registration.models import Registration

    xray = simulated_xray(patient_a, blank=True)
    client.force_login(surgeon_a)
    r = client.post(reverse("registration:xray-register", args=[xray.pk]), follow=True)
    assert "the patient has no CT study ready: import the CT first" in r.content.decode()
    assert not Registration.objects.exists()


def test_reviewers_cannot_start_jobs_and_surgeons_cannot_review(
    client, scene, make_user, team_a, surgeon_a
):
    reviewer = make_user("reviewer_a", "Reviewer", team=team_a)
    client.force_login(reviewer)
    assert (
        client.post(reverse("registration:study-prepare", args=[scene["study"].pk])).status_code
        == 403
    )
    assert (
        client.post(reverse("registration:xray-register", args=[scene["xray"].pk])).status_code
        == 403
    )
    client.force_login(surgeon_a)
    r = client.post(f"/api/registrations/{scene['reg'].pk}/review/", {"decision": "accepted"})
    assert r.status_code == 403
    assert (
        client.post(
            reverse("review:decide", args=[scene["reg"].pk]), {"decision": "accepted"}
        ).status_code
        == 403
    )
    assert client.get(reverse("review:dashboard")).status_code == 403
    scene["reg"].refresh_from_db()
    assert scene["reg"].review_status == "pending"


def test_api_lists_reviews_and_landmarks(client, scene, make_user, team_a):
    from geometry.camera import project
    from tests.review.helpers import camera, true_pose

    reviewer = make_user("reviewer_a", "Reviewer", team=team_a)
    client.force_login(reviewer)
    rows = client.get(f"/api/registrations/?patient={scene['study'].patient_id}").json()
    assert rows["count"] == 1 and rows["results"][0]["quality"]["true_mtre_mm"] == 0.8
    bad = client.post(
        f"/api/registrations/{scene['reg'].pk}/review/",
        {"decision": "rejected"},
        content_type="application/json",
    )
    assert bad.status_code == 400 and "say why" in bad.content.decode()
    ok = client.post(
        f"/api/registrations/{scene['reg'].pk}/review/",
        {"decision": "accepted", "comment": "fine"},
        content_type="application/json",
    )
    assert ok.status_code == 200 and ok.json()["review_status"] == "accepted"
    assert ok.json()["reviewed_by"] == "reviewer_a"
    uv = project([[0.0, 10.0, 5.0]], camera().K, true_pose())[0]
    lm = client.post(
        f"/api/registrations/{scene['reg'].pk}/landmarks/",
        {"u_px": uv[0] + 1, "v_px": uv[1], "x_mm": 0, "y_mm": 10, "z_mm": 5},
        content_type="application/json",
    )
    assert lm.status_code == 201
    assert lm.json()["error_px"] == pytest.approx(1.0, abs=1e-6)
    assert lm.json()["error_mm_at_detector"] == pytest.approx(3.6, abs=1e-6)
    models = client.get(f"/api/registration-models/?study={scene['study'].pk}").json()
    assert models["count"] == 1 and models["results"][0]["status"] == "ready"


def test_record_page_panels_render_the_buttons(scene):
    """The partials the CT-study and X-ray pages include: buttons for surgeons only."""
    from django.template.loader import render_to_string

    html = render_to_string(
        "registration_site/_study_panel.html", {"study": scene["study"], "is_surgeon": True}
    )
    assert reverse("registration:study-prepare", args=[scene["study"].pk]) in html
    assert reverse("registration:model-detail", args=[scene["model"].pk]) in html
    assert "Prepare for registration" in html
    html = render_to_string(
        "registration_site/_xray_panel.html", {"xray": scene["xray"], "is_surgeon": True}
    )
    assert reverse("registration:xray-register", args=[scene["xray"].pk]) in html
    assert reverse("registration:registration-detail", args=[scene["reg"].pk]) in html
    assert "true mTRE 0.80 mm" in html
    html = render_to_string(
        "registration_site/_xray_panel.html", {"xray": scene["xray"], "is_surgeon": False}
    )
    assert reverse("registration:xray-register", args=[scene["xray"].pk]) not in html


def test_rows_whose_job_ended_without_them_are_settled(client, scene, surgeon_a):
    """A job that could not be published (or was killed) leaves no row running forever."""
    from webapp.jobs.models import Job
    from webapp.xray_registration.models import Registration, RegistrationModel

    job = Job.objects.create(
        kind="register_xray",
        queue="gpu",
        status=Job.Status.FAILED,
        error="could not reach the job queue: ConnectionError: refused",
    )
    reg = Registration.objects.create(
        xray=scene["xray"], study=scene["study"], model=scene["model"], job=job
    )
    tjob = Job.objects.create(
        kind="train_registration_model", queue="gpu", status=Job.Status.CANCELLED
    )
    model = RegistrationModel.objects.create(study=scene["study"], job=tjob)
    client.force_login(surgeon_a)
    page = client.get(reverse("registration:registration-detail", args=[reg.pk])).content.decode()
    assert "could not reach the job queue" in page
    reg.refresh_from_db()
    assert reg.status == "failed"
    assert (
        client.get(reverse("registration:model-curve", args=[model.pk])).json()["status"]
        == "cancelled"
    )


def test_api_starts_training_and_registration(
    client, scene, surgeon_a, make_user, team_a, team_b, django_capture_on_commit_callbacks
):
    from webapp.xray_registration.models import Registration, RegistrationModel

    client.force_login(surgeon_a)
    with django_capture_on_commit_callbacks(execute=False):
        r = client.post(
            "/api/registrations/", {"xray": scene["xray"].pk}, content_type="application/json"
        )
        assert r.status_code == 202 and r.json()["status"] == "running"
        t = client.post(
            "/api/registration-models/",
            {"study": scene["study"].pk, "preset": "standard"},
            content_type="application/json",
        )
        assert (
            t.status_code == 202
            and t.json()["status"] == "training"
            and t.json()["preset"] == "standard"
        )
    bad = client.post(
        "/api/registration-models/",
        {"study": scene["study"].pk, "preset": "huge"},
        content_type="application/json",
    )
    assert bad.status_code == 400
    reviewer = make_user("reviewer_a", "Reviewer", team=team_a)
    client.force_login(reviewer)
    assert (
        client.post(
            "/api/registrations/", {"xray": scene["xray"].pk}, content_type="application/json"
        ).status_code
        == 403
    )
    client.force_login(make_user("surgeon_b2", "Surgeon", team=team_b))
    assert (
        client.post(
            "/api/registrations/", {"xray": scene["xray"].pk}, content_type="application/json"
        ).status_code
        == 404
    )
    assert Registration.objects.count() == 2 and RegistrationModel.objects.count() == 2
