"""Post-op: achieved trajectories compared with the plan, the outcomes review page."""

from __future__ import annotations

import numpy as np
import pytest
from django.urls import reverse

from tests.planning import helpers
from webapp.planning import services

ENTRY = np.array([5.0, -25.0, 10.0])
TARGET = np.array([-5.0, 20.0, 0.0])


@pytest.fixture
def planned(plan_a, surgeon_a):
    picks = helpers.picks_for(ENTRY, TARGET, helpers.pose(0), helpers.pose(90))
    services.save_version(
        plan_a,
        surgeon_a,
        [{"name": "S1", "colour": "#00b4ff", "diameter_mm": 5, "picks": picks}],
        "",
    )
    return plan_a


def test_outcome_from_postop_picks(client, planned, surgeon_a, patient_a, carm):
    post1 = helpers.make_xray(patient_a, carm, 0.0, description="post-op AP")
    post2 = helpers.make_xray(patient_a, carm, 90.0, description="post-op lateral")
    achieved_entry = ENTRY + np.array([1.0, 0.0, 2.0])
    achieved_target = TARGET + np.array([0.0, 3.0, -4.0])
    picks = helpers.picks_for(achieved_entry, achieved_target, helpers.pose(0), helpers.pose(90))
    client.force_login(surgeon_a)
    r = client.post(
        reverse("planning-api:plan-outcomes", args=[planned.pk]),
        {"trajectory": "S1", "xray1": post1.pk, "xray2": post2.pk, "picks": picks},
        content_type="application/json",
    )
    assert r.status_code == 201, r.content
    o = r.json()
    assert o["entry_deviation_mm"] == pytest.approx(np.sqrt(5), abs=1e-5)
    assert o["tip_deviation_mm"] == pytest.approx(5.0, abs=1e-5)
    d_plan = (TARGET - ENTRY) / np.linalg.norm(TARGET - ENTRY)
    d_ach = (achieved_target - achieved_entry) / np.linalg.norm(achieved_target - achieved_entry)
    assert o["angular_deviation_deg"] == pytest.approx(
        np.degrees(np.arccos(d_plan @ d_ach)), abs=1e-5
    )
    assert "patient did not move" in o["details"]["warning"]


def test_outcome_entered_and_refusals(client, planned, surgeon_a):
    client.force_login(surgeon_a)
    url = reverse("planning-api:plan-outcomes", args=[planned.pk])
    r = client.post(
        url,
        {
            "trajectory": "S1",
            "source": "registration",
            "entry": ENTRY.tolist(),
            "target": TARGET.tolist(),
        },
        content_type="application/json",
    )
    assert r.status_code == 201
    assert r.json()["tip_deviation_mm"] == pytest.approx(0.0, abs=1e-6)
    r = client.post(
        url,
        {"trajectory": "nope", "entry": [0, 0, 0], "target": [1, 1, 1]},
        content_type="application/json",
    )
    assert r.status_code == 400 and "no trajectory named 'nope'" in r.json()["detail"]
    r = client.post(
        url,
        {"trajectory": "S1", "entry": [0, 0], "target": [1, 1, 1]},
        content_type="application/json",
    )
    assert r.status_code == 400 and "entry must be [x, y, z]" in r.json()["detail"]
    r = client.post(
        url,
        {"trajectory": "S1", "entry": [0, 0, 0], "target": [0, 0, 0]},
        content_type="application/json",
    )
    assert r.status_code == 400 and "coincide" in r.json()["detail"]


def test_outcomes_page_scoped(client, planned, surgeon_a, surgeon_b):
    services.record_outcome(
        planned,
        surgeon_a,
        {"trajectory": "S1", "entry": (ENTRY + 1).tolist(), "target": TARGET.tolist()},
    )
    client.force_login(surgeon_a)
    r = client.get(reverse("planning:outcomes"))
    assert (
        r.status_code == 200 and b"L4 pedicle screws" in r.content and b"outcome-chart" in r.content
    )
    client.force_login(surgeon_b)
    r = client.get(reverse("planning:outcomes"))
    assert b"L4 pedicle screws" not in r.content and b"No post-op outcome" in r.content


def test_postop_page_renders(client, planned, surgeon_a, patient_a, carm):
    x1 = helpers.make_xray(patient_a, carm, 0.0)
    x2 = helpers.make_xray(patient_a, carm, 90.0)
    client.force_login(surgeon_a)
    r = client.get(reverse("planning:postop", args=[planned.pk]) + f"?xray1={x1.pk}&xray2={x2.pk}")
    assert r.status_code == 200 and b"record-outcome" in r.content
