"""Another care team gets 404 on every plan page and API; reviewers cannot change plans."""

from __future__ import annotations

import pytest
from django.urls import reverse


@pytest.mark.parametrize(
    "name, args",
    [
        ("planning:plan", []),
        ("planning:view-image", [1]),
        ("planning:export-json", []),
        ("planning:report-png", []),
        ("planning:report-pdf", []),
        ("planning:scene", []),
        ("planning-api:plan-detail", []),
        ("planning-api:plan-versions", []),
        ("planning-api:plan-tool-pose", []),
        ("planning-api:plan-outcomes", []),
    ],
)
def test_other_team_gets_404(client, plan_a, surgeon_b, name, args):
    client.force_login(surgeon_b)
    r = client.get(reverse(name, args=[plan_a.pk, *args]))
    assert r.status_code == 404


def test_other_team_cannot_post(client, plan_a, surgeon_b):
    client.force_login(surgeon_b)
    for name in (
        "planning-api:plan-versions",
        "planning-api:plan-tool-pose",
        "planning-api:plan-outcomes",
    ):
        r = client.post(reverse(name, args=[plan_a.pk]), {}, content_type="application/json")
        assert r.status_code == 404, name
    r = client.get(reverse("planning:patient-plans", args=[plan_a.patient.pk]))
    assert r.status_code == 404


def test_own_team_sees_plan_and_list_is_scoped(client, plan_a, surgeon_a, surgeon_b):
    client.force_login(surgeon_a)
    assert client.get(reverse("planning:plan", args=[plan_a.pk])).status_code == 200
    assert client.get(reverse("planning:view-image", args=[plan_a.pk, 2])).content[:4] == b"\x89PNG"
    assert [p["id"] for p in client.get(reverse("planning-api:plan-list")).json()["results"]] == [
        plan_a.pk
    ]
    client.force_login(surgeon_b)
    assert client.get(reverse("planning-api:plan-list")).json()["results"] == []


def test_reviewer_cannot_save_versions(client, plan_a, make_user, team_a):
    reviewer = make_user("rev_a", "Reviewer", team=team_a)
    client.force_login(reviewer)
    assert client.get(reverse("planning:plan", args=[plan_a.pk])).status_code == 200
    r = client.post(
        reverse("planning-api:plan-versions", args=[plan_a.pk]),
        {"trajectories": []},
        content_type="application/json",
    )
    assert r.status_code == 403


def test_anonymous_redirected_or_refused(client, plan_a):
    assert client.get(reverse("planning:plan", args=[plan_a.pk])).status_code == 302
    assert client.get(reverse("planning-api:plan-detail", args=[plan_a.pk])).status_code in (
        401,
        403,
    )


def test_views_are_audited(client, plan_a, surgeon_a):
    from webapp.core.models import AuditEvent

    client.force_login(surgeon_a)
    client.get(reverse("planning:export-json", args=[plan_a.pk]))
    assert AuditEvent.objects.filter(
        action="export", patient_mrn=plan_a.patient.mrn, object_type="Plan"
    ).exists()


def test_create_plan_page(client, two_views, patient_a, surgeon_a):
    client.force_login(surgeon_a)
    url = reverse("planning:patient-plans", args=[patient_a.pk])
    r = client.post(url, {"name": "Hip", "xray1": two_views[0].pk, "xray2": two_views[0].pk})
    assert r.status_code == 400 and b"two different X-ray views" in r.content
    r = client.post(url, {"name": "Hip", "xray1": two_views[0].pk, "xray2": two_views[1].pk})
    assert r.status_code == 302
    assert patient_a.plans.get().versions.count() == 1


def test_plan_index_scoped(client, plan_a, surgeon_a, surgeon_b):
    client.force_login(surgeon_a)
    assert b"L4 pedicle screws" in client.get(reverse("planning:index")).content
    client.force_login(surgeon_b)
    assert b"L4 pedicle screws" not in client.get(reverse("planning:index")).content
