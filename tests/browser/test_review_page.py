"""The review page in a browser: a reviewer sees a registration with its overlay, changes
the overlay opacity and toggles it, picks a landmark pixel, accepts with a comment, and
the dashboard shows the accepted registration with its charts."""

from __future__ import annotations

import pytest

from tests.core.factories import isolated_media  # noqa: F401
from tests.review.helpers import finished_registration, simulated_xray, tiny_study


@pytest.mark.browser
def test_reviewer_accepts_a_registration_and_sees_it_on_the_dashboard(
    login_page, page_url, make_user, team_a, patient_a
):
    from webapp.xray_registration.models import Registration

    reviewer = make_user("reviewer_a", "Reviewer", team=team_a)
    study = tiny_study(patient_a)
    xray = simulated_xray(patient_a)
    reg = finished_registration(xray, study, true_mtre=1.25)

    page = login_page(reviewer)
    page.goto(page_url("review:registration", reg.pk))
    page.wait_for_function(
        "() => ['reg-xray', 'reg-overlay', 'reg-drr'].every("
        "id => document.getElementById(id).complete && document.getElementById(id).naturalWidth === 64)"
    )
    assert page.eval_on_selector("#reg-overlay", "el => el.style.opacity") == "0.8"
    page.fill("#overlay-opacity", "30")
    page.dispatch_event("#overlay-opacity", "input")
    assert page.eval_on_selector("#reg-overlay", "el => el.style.opacity") == "0.3"
    assert page.text_content("#overlay-opacity-value") == "30%"
    page.uncheck("#overlay-toggle")
    assert page.eval_on_selector("#reg-overlay", "el => el.hidden") is True
    page.check("#overlay-toggle")
    assert page.evaluate("window.OrthoFuseRegistration.opacity()") == pytest.approx(0.3)

    # a click in the middle of the X-ray picks the pixel (31.5, 31.5) of the 64 x 64 image
    box = page.locator("#reg-stack").bounding_box()
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    assert float(page.input_value("#lm-u")) == pytest.approx(31.5, abs=0.6)
    assert float(page.input_value("#lm-v")) == pytest.approx(31.5, abs=0.6)

    page.check("input[name=decision][value=accepted]")
    page.fill("#id_comment", "edges on the cortex")
    page.click("#review-submit")
    page.wait_for_selector(f"text=Registration #{reg.pk} accepted")
    assert page.text_content("#review-status").strip() == "Accepted"
    reg.refresh_from_db()
    assert reg.review_status == Registration.Review.ACCEPTED
    assert reg.review_comment == "edges on the cortex" and reg.reviewed_by == reviewer

    page.goto(page_url("review:dashboard"))
    page.wait_for_function("() => window.OrthoFuseDashboard && window.OrthoFuseDashboard.ready")
    row = page.locator(f"#dash-table tr[data-registration='{reg.pk}']")
    assert "accepted (reviewer_a)" in row.text_content()
    assert "1.25 mm" in row.text_content()
    assert page.text_content("#sum-mtre").strip() == "1.25 mm"
    assert page.locator("#chart-mtre .main-svg").count() > 0
    assert page.locator("#chart-stages .main-svg").count() > 0
    errors = [e for e in page.console_errors if "ct_viewer" not in e]
    assert errors == []


@pytest.mark.browser
def test_landmark_from_an_xray_click_and_the_ct_viewer(
    login_page, page_url, make_user, team_a, patient_a, built_frontend
):
    from geometry.camera import project
    from tests.review.helpers import camera, true_pose

    reviewer = make_user("reviewer_a", "Reviewer", team=team_a)
    study = tiny_study(patient_a)
    reg = finished_registration(simulated_xray(patient_a), study)
    page = login_page(reviewer)
    page.goto(page_url("review:registration", reg.pk))
    page.wait_for_function("() => window.orthofuseViewer && window.orthofuseViewer.ready")
    point = [12.0, -6.0, 18.0]
    page.evaluate("(p) => window.orthofuseViewer.centreOn(p)", point)
    page.click("#lm-from-ct")
    got = [float(page.input_value(sel)) for sel in ("#lm-x", "#lm-y", "#lm-z")]
    assert got == pytest.approx(point, abs=0.05)
    # pick the exact projection of that point on the X-ray: zero projected error
    uv = project([point], camera().K, true_pose())[0]
    page.evaluate("(uv) => window.OrthoFuseReview.pick(uv[0], uv[1])", [float(uv[0]), float(uv[1])])
    page.click("#lm-submit")
    page.wait_for_selector("#landmark-table")
    lm = reg.landmarks.get()
    assert lm.error_px < 0.2  # rounding of the form fields to 0.1 px / 0.1 mm
    assert page.locator("#reg-marks circle.saved").count() == 1
