"""The session page and the JSON feed it polls: tiles per shot with state and overlay, the
two pinned shots open their two-view plan, another care team gets 404s, every read of the
patient's data is audited, and the page runs no inline script."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from tests.core.factories import isolated_media  # noqa: F401
from tests.review.helpers import finished_registration, simulated_xray, tiny_study


@pytest.fixture
def scene(patient_a, surgeon_a):
    """An open session with three shots: registered (overlay stored), still registering
    (queued job) and refused before starting (no registration)."""
    from webapp.jobs.models import Job
    from webapp.operating.models import SessionShot
    from webapp.operating.services import open_session
    from webapp.xray_registration.models import Registration

    study = tiny_study(patient_a)
    session, _ = open_session(patient=patient_a, operation="SI screw, left", user=surgeon_a)
    ap = simulated_xray(patient_a, primary=0.0, secondary=0.0, description="AP")
    lateral = simulated_xray(patient_a, primary=90.0, secondary=0.0, description="lateral")
    third = simulated_xray(patient_a, primary=30.0, secondary=5.0, description="oblique")
    registered = SessionShot.objects.create(
        session=session, xray=ap, registration=finished_registration(ap, study)
    )
    job = Job.objects.create(kind="register_xray", queue="gpu", patient=patient_a)
    running = Registration.objects.create(xray=lateral, study=study, job=job)
    registering = SessionShot.objects.create(
        session=session, xray=lateral, registration=running,
        device_note="uncalibrated device: C-arm X has no active calibration profile",
    )
    refused = SessionShot.objects.create(session=session, xray=third, refusal="no CT, sorry")
    return session, [registered, registering, refused]


def test_the_page_loads_its_script_and_runs_no_inline_script(client, scene, surgeon_a):
    from webapp.core.models import AuditEvent

    session, _ = scene
    client.force_login(surgeon_a)
    response = client.get(reverse("operating:session", args=[session.pk]))
    assert response.status_code == 200
    page = response.content.decode()
    assert f'data-url="{reverse("operating:session-json", args=[session.pk])}"' in page
    scripts = re.findall(r"<script\b[^>]*>", page)
    assert any("js/operating_session.js" in tag for tag in scripts)
    assert all("src=" in tag for tag in scripts), scripts  # no inline script
    assert not re.search(r"\son[a-z]+=", page)  # no inline event handlers
    csp = response.headers["Content-Security-Policy"]
    script_src = re.search(r"script-src ([^;]*)", csp).group(1)
    assert "'self'" in script_src and "unsafe-inline" not in script_src
    assert 'id="pin-views"' in page and 'id="close-session"' in page
    assert AuditEvent.objects.filter(
        action="view", patient_mrn=session.patient.mrn, object_type="OperatingSession",
        detail="session page", username=surgeon_a.username,
    ).count() == 1


def test_the_feed_gives_one_tile_per_shot_with_its_state(client, scene, surgeon_a):
    from webapp.core.models import AuditEvent

    session, (registered, registering, refused) = scene
    client.force_login(surgeon_a)
    response = client.get(reverse("operating:session-json", args=[session.pk]))
    assert response.status_code == 200 and "no-store" in response["Cache-Control"]
    data = response.json()
    assert data["open"] is True and data["operation"] == "SI screw, left"
    tiles = {t["id"]: t for t in data["shots"]}
    assert [t["id"] for t in data["shots"]] == [registered.pk, registering.pk, refused.pk]

    done = tiles[registered.pk]
    assert done["state"] == "registered" and done["registration_id"] == registered.registration_id
    overlay = client.get(done["overlay_url"])
    assert overlay.status_code == 200 and overlay.content[:8] == b"\x89PNG\r\n\x1a\n"

    busy = tiles[registering.pk]
    assert busy["state"] == "registering" and busy["overlay_url"] is None
    assert busy["message"] == "waiting for a worker"
    assert busy["device_note"].startswith("uncalibrated device")
    assert client.get(busy["preview_url"]).status_code == 200

    no = tiles[refused.pk]
    assert no["state"] == "refused" and no["registration_id"] is None
    assert no["message"] == "Registration not started: no CT, sorry"
    assert AuditEvent.objects.filter(
        action="view", patient_mrn=session.patient.mrn, detail="session shots (JSON)"
    ).count() == 1


def test_identical_polls_are_one_audited_read_and_a_change_is_another(
    client, scene, surgeon_a, monkeypatch
):
    from webapp.core.models import AuditEvent
    from webapp.operating import views

    session, (_, _, refused) = scene
    client.force_login(surgeon_a)
    url = reverse("operating:session-json", args=[session.pk])

    def feed_rows() -> int:
        return AuditEvent.objects.filter(detail="session shots (JSON)").count()

    for _ in range(3):
        assert client.get(url).status_code == 200
    assert feed_rows() == 1  # the page polls every second: one disclosure, one row
    refused.refusal = "no CT yet"
    refused.save()
    client.get(url)
    assert feed_rows() == 2  # new content shown: audited again
    later = views._now() + views.FEED_AUDIT_REPEAT_S + 1
    monkeypatch.setattr(views, "_now", lambda: later)
    client.get(url)
    assert feed_rows() == 3  # an unchanged feed is audited again after a while


def test_a_failed_job_turns_the_tile_into_a_refusal_with_its_reason(client, scene, surgeon_a):
    from webapp.jobs.models import Job

    session, (_, registering, _) = scene
    Job.objects.filter(pk=registering.registration.job_id).update(
        status="failed", error="cannot register the X-ray: the image is blank"
    )
    client.force_login(surgeon_a)
    tiles = client.get(reverse("operating:session-json", args=[session.pk])).json()["shots"]
    tile = next(t for t in tiles if t["id"] == registering.pk)
    assert tile["state"] == "refused"
    assert tile["message"] == "Registration refused: cannot register the X-ray: the image is blank"


def test_pinning_two_shots_opens_their_two_view_plan(client, scene, surgeon_a):
    from webapp.core.models import AuditEvent
    from webapp.planning.models import Plan

    session, (registered, registering, _) = scene
    client.force_login(surgeon_a)
    url = reverse("operating:pin", args=[session.pk])
    response = client.post(url, {"shot": [registered.pk, registering.pk]})
    plan = Plan.objects.get()
    assert response.status_code == 302 and response.url == reverse("planning:plan", args=[plan.pk])
    assert (plan.xray1, plan.xray2) == (registered.xray, registering.xray)
    assert plan.patient == session.patient and plan.name.startswith("SI screw, left: shots")
    session.refresh_from_db()
    assert session.plan == plan
    assert client.get(response.url).status_code == 200  # the plan page opens
    feed = client.get(reverse("operating:session-json", args=[session.pk])).json()
    assert feed["plan_url"] == reverse("planning:plan", args=[plan.pk])
    assert AuditEvent.objects.filter(action="create", object_type="Plan").count() == 1

    again = client.post(url, {"shot": [registering.pk, registered.pk]})  # either order
    assert again.url == response.url and Plan.objects.count() == 1


@pytest.mark.parametrize(
    ("picked", "words"),
    [("one", "pin exactly two shots"), ("none", "pin exactly two shots"),
     ("junk", "pin two shots of this session"), ("foreign", "must belong to this session")],
)
def test_pinning_anything_but_two_shots_of_the_session_is_refused(
    client, scene, surgeon_a, patient_a, picked, words
):
    from webapp.operating.models import OperatingSession, SessionShot
    from webapp.planning.models import Plan

    session, (registered, registering, _) = scene
    shots = {"one": [registered.pk], "none": [], "junk": ["abc", registered.pk]}
    if picked == "foreign":
        other = OperatingSession.objects.create(
            patient=patient_a, operation="old", closed_at="2026-01-01T00:00:00Z"
        )
        foreign = SessionShot.objects.create(session=other, xray=simulated_xray(patient_a))
        shots["foreign"] = [registered.pk, foreign.pk]
    client.force_login(surgeon_a)
    response = client.post(
        reverse("operating:pin", args=[session.pk]), {"shot": shots[picked]}, follow=True
    )
    assert response.status_code == 200 and words in response.content.decode()
    assert not Plan.objects.exists()


def test_another_care_team_gets_404_everywhere(client, scene, surgeon_b):
    from webapp.core.models import AuditEvent
    from webapp.planning.models import Plan

    session, (registered, registering, _) = scene
    client.force_login(surgeon_b)
    assert client.get(reverse("operating:session", args=[session.pk])).status_code == 404
    assert client.get(reverse("operating:session-json", args=[session.pk])).status_code == 404
    assert client.post(reverse("operating:close", args=[session.pk])).status_code == 404
    pin = client.post(
        reverse("operating:pin", args=[session.pk]), {"shot": [registered.pk, registering.pk]}
    )
    assert pin.status_code == 404 and not Plan.objects.exists()
    listing = client.get(reverse("operating:list")).content.decode()
    assert "SI screw, left" not in listing and session.patient.mrn not in listing
    # nor can the other team open a session for the patient
    opened = client.post(reverse("operating:open"), {"patient": session.patient.pk, "operation": "x"})
    assert opened.status_code == 404
    session.refresh_from_db()
    assert session.is_open
    assert not AuditEvent.objects.filter(
        username=surgeon_b.username, patient_mrn=session.patient.mrn
    ).exists()


def test_a_reviewer_of_the_team_watches_but_does_not_pin(client, scene, make_user, team_a):
    from webapp.planning.models import Plan

    session, (registered, registering, _) = scene
    reviewer = make_user("reviewer_a", "Reviewer", team=team_a)
    client.force_login(reviewer)
    page = client.get(reverse("operating:session", args=[session.pk]))
    assert page.status_code == 200 and 'id="pin-views"' not in page.content.decode()
    assert client.get(reverse("operating:session-json", args=[session.pk])).status_code == 200
    pin = client.post(
        reverse("operating:pin", args=[session.pk]), {"shot": [registered.pk, registering.pk]}
    )
    assert pin.status_code == 403 and not Plan.objects.exists()
