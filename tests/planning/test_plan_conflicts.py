"""Two surgeons saving one plan: the second save, based on a version that is no longer the
latest, gets 409 with what the other save changed, and nothing is stored; saving again
based on the latest (after a merge) works."""

from __future__ import annotations

from django.urls import reverse

from tests.planning.test_plan_versions import ENTRY, TARGET, traj_payload
from webapp.planning.models import PlanVersion


def _save(client, plan, trajectories, based_on):
    return client.post(
        reverse("planning-api:plan-versions", args=[plan.pk]),
        {"trajectories": trajectories, "based_on": based_on},
        content_type="application/json",
    )


def test_a_stale_save_is_refused_with_what_changed(client, plan_a, surgeon_a, make_user, team_a):
    other = make_user("surgeon_other", "Surgeon", team=team_a)
    start = plan_a.latest_version.number  # both open the plan at this version
    client.force_login(other)
    first = _save(client, plan_a, [traj_payload("L4 left")], start)
    assert first.status_code == 201, first.content
    client.force_login(surgeon_a)
    stale = _save(client, plan_a, [traj_payload("L4 right", target=TARGET + 4)], start)
    assert stale.status_code == 409
    body = stale.json()
    assert body["latest"]["number"] == first.json()["number"]
    assert "added L4 left" in body["changes"] and "surgeon_other" in body["detail"]
    assert PlanVersion.objects.filter(plan=plan_a).count() == start + 1
    # the page merges by name: theirs (L4 left) plus ours (L4 right)
    assert [t["name"] for t in body["latest"]["snapshot"]["trajectories"]] == ["L4 left"]
    merged = [traj_payload("L4 left"), traj_payload("L4 right", target=TARGET + 4)]
    again = _save(client, plan_a, merged, body["latest"]["number"])
    assert again.status_code == 201, again.content
    names = [t["name"] for t in again.json()["snapshot"]["trajectories"]]
    assert names == ["L4 left", "L4 right"]


def test_a_save_without_based_on_still_works_for_api_clients(client, plan_a, surgeon_a):
    client.force_login(surgeon_a)
    r = client.post(
        reverse("planning-api:plan-versions", args=[plan_a.pk]),
        {"trajectories": [traj_payload(entry=ENTRY)]},
        content_type="application/json",
    )
    assert r.status_code == 201


def test_a_bad_based_on_is_refused(client, plan_a, surgeon_a):
    client.force_login(surgeon_a)
    r = _save(client, plan_a, [traj_payload()], "yesterday")
    assert r.status_code == 400 and "based_on" in r.json()["detail"]
