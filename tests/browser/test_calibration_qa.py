"""The calibration QA page in Chromium: beads over the image, residual plots, review."""

from __future__ import annotations

import pytest
from django.core.files.base import ContentFile

from tests.calibration.site_helpers import phantom_png


@pytest.fixture
def draft_profile(transactional_db):
    from webapp.calibration.models import CalibrationProfile
    from webapp.calibration.services import ensure_builtin_phantoms, run_calibration
    from webapp.records.models import CArm

    phantoms = {p.name: p for p in ensure_builtin_phantoms()}
    carm = CArm.objects.create(
        name="QA C-arm",
        detector_type="image_intensifier",
        pixel_spacing_x_mm=0.5,
        pixel_spacing_y_mm=0.5,
    )
    profile = CalibrationProfile.objects.create(
        carm=carm, version=1, phantom=phantoms["OrthoFuse clip-on two-layer phantom"]
    )
    profile.image_file.save("phantom.png", ContentFile(phantom_png(seed=11)))
    return run_calibration(profile, (0.5, 0.5))


@pytest.mark.browser
def test_admin_reviews_and_activates_on_the_qa_page(
    built_frontend, login_page, page_url, make_user, draft_profile
):
    admin = make_user("qa_admin", "CalibrationAdmin")
    page = login_page(admin)
    page.goto(page_url("calibration:profile-detail", draft_profile.pk))
    page.wait_for_function("window.orthofuseQA && window.orthofuseQA.ready")
    n_points = page.evaluate(
        "document.getElementById('plot-beads').data.reduce((n, t) => n + t.x.length, 0)"
    )
    assert n_points == len(draft_profile.data["beads"]) and n_points > 50
    n_hist = page.evaluate("document.getElementById('plot-hist').data[0].x.length")
    assert n_hist == draft_profile.beads_used
    # Both images (as stored and dewarped) load.
    for selector in ("#img-before", "#img-after"):
        width = page.eval_on_selector(selector, "img => img.complete ? img.naturalWidth : 0")
        assert width == 512
    assert page.locator("#source").inner_text().count("mm") >= 2
    page.click("#activate")
    page.wait_for_selector("#profile-status[data-status='active']")
    assert not page.console_errors, page.console_errors
    draft_profile.refresh_from_db()
    assert draft_profile.status == "active" and draft_profile.reviewed_by == admin
