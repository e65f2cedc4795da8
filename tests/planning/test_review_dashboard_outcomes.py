"""The review dashboard summarises post-op trajectory deviations across patients."""

from __future__ import annotations

import numpy as np
from django.urls import reverse

from tests.planning import helpers
from webapp.planning import services

ENTRY = np.array([5.0, -25.0, 10.0])
TARGET = np.array([-5.0, 20.0, 0.0])


def test_dashboard_shows_outcomes_of_visible_patients_only(client, plan_a, surgeon_a, make_user, team_a, team_b):
    picks = helpers.picks_for(ENTRY, TARGET, helpers.pose(0), helpers.pose(90))
    services.save_version(plan_a, surgeon_a, [{"name": "S1", "colour": "#00b4ff", "diameter_mm": 5, "picks": picks}], "")
    services.record_outcome(
        plan_a, surgeon_a,
        {"trajectory": "S1", "source": "entered", "entry": (ENTRY + [3.0, 4.0, 0.0]).tolist(), "target": TARGET.tolist()},
    )
    own = make_user("reviewer_a", "Reviewer", team=team_a)
    other = make_user("reviewer_b", "Reviewer", team=team_b)
    client.force_login(own)
    page = client.get(reverse("review:dashboard")).content.decode()
    assert "1 trajectories compared with their plan" in page
    assert "<td>Entry deviation (mm)</td><td>5.00</td>" in page
    client.force_login(other)
    page = client.get(reverse("review:dashboard")).content.decode()
    assert "No post-op trajectory has been compared with its plan yet." in page
