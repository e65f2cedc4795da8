"""Two surgeons on one plan in Chromium: the page's save meets a version saved meanwhile,
says who changed what, and merging keeps both surgeons' trajectories."""

from __future__ import annotations

import numpy as np
import pytest

from tests.browser.test_planning import ENTRY, TARGET, _click, _open, plan_setup  # noqa: F401
from tests.planning import helpers

pytestmark = pytest.mark.browser


def test_conflicting_save_offers_a_merge(plan_setup, login_page, page_url, surgeon_a, make_user, team_a):  # noqa: F811
    from webapp.planning import services
    from webapp.planning.models import PlanVersion

    page = login_page(surgeon_a)
    _open(page, page_url("planning:plan", plan_setup.pk))
    # meanwhile a colleague saves a trajectory of their own
    colleague = make_user("surgeon_colleague", "Surgeon", team=team_a)
    picks = helpers.picks_for(ENTRY, TARGET, helpers.pose(0), helpers.pose(90.0))
    theirs = {"name": "Colleague S2", "colour": "#00b4ff", "diameter_mm": 5, "picks": picks}
    services.save_version(plan_setup, colleague, [theirs], "")

    uv1 = helpers.project(helpers.pose(0.0), np.stack([ENTRY, TARGET]))
    uv2 = helpers.project(helpers.pose(90.0), np.stack([ENTRY, TARGET]))
    page.click("#add-trajectory")
    for view, uv in ((0, uv1[0]), (0, uv1[1]), (1, uv2[0]), (1, uv2[1])):
        _click(page, view, uv)
    page.click("#save-plan")
    page.wait_for_selector("#merge-plan")
    assert "surgeon_colleague saved version 2" in page.inner_text("#save-message")
    assert PlanVersion.objects.filter(plan=plan_setup).count() == 2
    page.click("#merge-plan")
    page.click("#save-plan")
    page.wait_for_selector("#save-message.ok")
    latest = PlanVersion.objects.filter(plan=plan_setup).order_by("-number").first()
    assert latest.number == 3
    names = sorted(t["name"] for t in latest.snapshot["trajectories"])
    assert names == ["Colleague S2", "Trajectory 1"]
