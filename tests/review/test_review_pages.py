"""Review pages: a reviewer sees every registration of a patient, accepts/rejects with a
comment, adds landmarks; the dashboard data is filterable; the CSV export is complete,
filtered, formula-safe and audited."""

from __future__ import annotations

import csv
import datetime as dt
import io

import numpy as np
import pytest
from django.urls import reverse

from tests.review.helpers import finished_registration, simulated_xray, tiny_study


@pytest.fixture
def reviewer_a(make_user, team_a):
    return make_user("reviewer_a", "Reviewer", team=team_a)


@pytest.fixture
def data(patient_a, patient_b, make_user, team_a):
    """Patient A: two ok registrations (mTRE 0.8, 2.4 mm) and one failed; patient B (other
    team): one ok registration."""
    study_a = tiny_study(patient_a)
    xa = simulated_xray(patient_a, blank=True)
    regs = [
        finished_registration(xa, study_a, true_mtre=0.8, seconds=1.0),
        finished_registration(xa, study_a, true_mtre=2.4, seconds=2.0),
        finished_registration(xa, study_a, status="failed", seconds=0.5),
    ]
    study_b = tiny_study(patient_b)
    xb = simulated_xray(patient_b, blank=True)
    other = finished_registration(xb, study_b, true_mtre=9.9)
    return {"a": regs, "b": other, "patient_a": patient_a}


def test_patient_page_lists_every_registration(client, data, reviewer_a):
    client.force_login(reviewer_a)
    page = client.get(reverse("review:patient", args=[data["patient_a"].pk]))
    assert page.status_code == 200
    html = page.content.decode()
    for reg in data["a"]:
        assert f'data-registration="{reg.pk}"' in html
    assert f'data-registration="{data["b"].pk}"' not in html
    assert "network: no bone recognised" in html


def test_review_page_decide_and_landmark_forms(client, data, reviewer_a):
    from geometry.camera import project
    from tests.review.helpers import camera, true_pose

    reg = data["a"][0]
    client.force_login(reviewer_a)
    page = client.get(reverse("review:registration", args=[reg.pk]))
    assert page.status_code == 200
    html = page.content.decode()
    assert (
        'id="review-form"' in html
        and 'id="landmark-form"' in html
        and 'id="overlay-toggle"' in html
    )

    r = client.post(
        reverse("review:decide", args=[reg.pk]),
        {"decision": "rejected", "comment": ""},
        follow=True,
    )
    assert "say why the registration is rejected" in r.content.decode()
    reg.refresh_from_db()
    assert reg.review_status == "pending"
    client.post(
        reverse("review:decide", args=[reg.pk]),
        {"decision": "rejected", "comment": "femur 3 mm off"},
    )
    reg.refresh_from_db()
    assert (reg.review_status, reg.review_comment, reg.reviewed_by) == (
        "rejected",
        "femur 3 mm off",
        reviewer_a,
    )

    uv = project(np.array([[5.0, -5.0, 10.0]]), camera().K, true_pose())[0]
    r = client.post(
        reverse("review:landmark-add", args=[reg.pk]),
        {"u_px": uv[0], "v_px": uv[1] + 2.0, "x_mm": 5, "y_mm": -5, "z_mm": 10},
        follow=True,
    )
    assert "projected error 2.00 px, 7.20 mm at the detector" in r.content.decode()
    lm = reg.landmarks.get()
    assert lm.error_px == pytest.approx(2.0, abs=1e-6)
    r = client.post(
        reverse("review:landmark-add", args=[reg.pk]), {"u_px": "a", "v_px": 1}, follow=True
    )
    assert "as numbers" in r.content.decode()
    assert reg.landmarks.count() == 1


def test_dashboard_summary_and_filters(client, data, reviewer_a):
    client.force_login(reviewer_a)
    page = client.get(reverse("review:dashboard"))
    assert page.status_code == 200
    summary = page.context["summary"]
    assert summary["n"] == 3 and summary["n_ok"] == 2
    assert summary["success_rate"] == pytest.approx(2 / 3, abs=1e-4)
    assert summary["median_true_mtre_mm"] == pytest.approx(1.6)
    js = client.get(reverse("review:dashboard-data") + "?status=ok").json()
    assert sorted(r["true_mtre_mm"] for r in js["rows"]) == [0.8, 2.4]
    assert set(js["rows"][0]["stages"]) == {"network", "pnp", "refine"}
    reviewed = data["a"][1]
    reviewed.review_status = "accepted"
    reviewed.save()
    js = client.get(reverse("review:dashboard-data") + "?review=accepted").json()
    assert [r["registration_id"] for r in js["rows"]] == [reviewed.pk]
    tomorrow = (dt.date.today() + dt.timedelta(days=1)).isoformat()
    assert (
        client.get(reverse("review:dashboard-data") + f"?date_from={tomorrow}").json()["rows"] == []
    )
    # another team's patient id filters to nothing rather than revealing rows
    js = client.get(
        reverse("review:dashboard-data") + f"?patient={data['b'].xray.patient_id}"
    ).json()
    assert js["rows"] == []


def test_csv_export_content_and_audit(client, data, reviewer_a):
    from webapp.core.models import AuditEvent
    from webapp.review.services import CSV_COLUMNS

    reg = data["a"][0]
    reg.review_comment = '=HYPERLINK("http://x")'
    reg.review_status = "accepted"
    reg.save()
    client.force_login(reviewer_a)
    r = client.get(reverse("review:export-csv"))
    assert r.status_code == 200 and r["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.content.decode())))
    assert list(rows[0].keys()) == CSV_COLUMNS
    assert {int(row["registration_id"]) for row in rows} == {x.pk for x in data["a"]}
    by_id = {int(row["registration_id"]): row for row in rows}
    assert float(by_id[reg.pk]["true_mtre_mm"]) == 0.8
    assert by_id[reg.pk]["review_comment"].startswith("'=")
    assert (
        by_id[data["a"][2].pk]["status"] == "failed"
        and by_id[data["a"][2].pk]["true_mtre_mm"] == ""
    )
    assert "network=0.0500" in by_id[reg.pk]["stage_seconds"]
    event = AuditEvent.objects.filter(action="export").latest("created_at")
    assert event.username == "reviewer_a" and "3 rows" in event.detail
    filtered = client.get(reverse("review:export-csv") + "?status=failed")
    assert len(list(csv.DictReader(io.StringIO(filtered.content.decode())))) == 1


def test_surgeon_gets_403_on_review_pages(client, data, surgeon_a):
    client.force_login(surgeon_a)
    for url in (
        reverse("review:dashboard"),
        reverse("review:dashboard-data"),
        reverse("review:export-csv"),
        reverse("review:patient", args=[data["patient_a"].pk]),
        reverse("review:registration", args=[data["a"][0].pk]),
    ):
        assert client.get(url).status_code == 403, url


def test_landmark_can_be_removed(client, data, reviewer_a):
    from webapp.core.models import AuditEvent
    from webapp.review.decisions import add_landmark

    reg = data["a"][0]
    pair = add_landmark(reg, reviewer_a, 30.0, 30.0, (0.0, 0.0, 0.0))
    other = add_landmark(data["b"], reviewer_a, 30.0, 30.0, (0.0, 0.0, 0.0))
    client.force_login(reviewer_a)
    # another team's registration: 404, its landmark stays
    r = client.post(reverse("review:landmark-delete", args=[data["b"].pk, other.pk]))
    assert r.status_code == 404
    client.post(reverse("review:landmark-delete", args=[reg.pk, pair.pk]))
    assert not reg.landmarks.exists() and data["b"].landmarks.filter(pk=other.pk).exists()
    assert AuditEvent.objects.filter(
        action="delete", object_type="LandmarkPair", object_id=str(pair.pk)
    ).exists()
