"""Two-view planning in Chromium: a surgeon plans by clicking, sees the epipolar line and
the snapping, saves, reloads, exports; another care team's surgeon gets 404."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.planning import helpers

pytestmark = pytest.mark.browser

ENTRY = np.array([12.0, -30.0, 20.0])
TARGET = np.array([-8.0, 25.0, -5.0])


@pytest.fixture
def plan_setup(settings, tmp_path, transactional_db, patient_a, surgeon_a):
    from webapp.planning import services

    settings.MEDIA_ROOT = str(tmp_path / "media")
    carm = helpers.make_carm()
    x1 = helpers.make_xray(patient_a, carm, 0.0, description="AP")
    x2 = helpers.make_xray(patient_a, carm, 90.0, description="lateral")
    return services.create_plan(patient_a, surgeon_a, "Browser plan", x1, x2)


def _views():
    from planning.engine.views_geometry import ViewGeometry

    cam = helpers.camera()
    return [
        ViewGeometry(
            cam.K, helpers.pose(lao), cam.width, cam.height, pixel_spacing_mm=cam.pixel_spacing_mm
        )
        for lao in (0.0, 90.0)
    ]


def _scroll_to_views(page):
    page.evaluate("() => window.planningApp.panels[0].canvas.scrollIntoView({block: 'center'})")


def _click(page, view_index, uv):
    _scroll_to_views(page)
    x, y = page.evaluate(
        "([i, uv]) => window.planningApp.clientPoint(i, uv)", [view_index, list(map(float, uv))]
    )
    page.mouse.click(x, y)


def _open(page, url):
    response = page.goto(url)
    page.wait_for_selector("body[data-planning-ready='1']")
    return response


def _real_errors(page):
    return [e for e in page.console_errors if "Failed to load resource" not in e]


def test_js_geometry_matches_python_engine(plan_setup, login_page, page_url, surgeon_a):
    from planning.engine.views_geometry import epipolar_line, triangulate

    v1, v2 = _views()
    page = login_page(surgeon_a)
    _open(page, page_url("planning:plan", plan_setup.pk))
    rng = np.random.default_rng(5)
    for _ in range(10):
        uv1 = rng.uniform(20, 300, size=2)
        uv2 = rng.uniform(20, 300, size=2)
        line_py = epipolar_line(v1, uv1, v2)
        line_js = np.array(
            page.evaluate(
                "([uv]) => PlanningGeometry.epipolarLine(planningApp.views[0], uv, planningApp.views[1])",
                [uv1.tolist()],
            )
        )
        # same line: two points of the Python line lie on the JS line within 0.5 px
        p0 = -line_py[2] * line_py[:2]
        for p in (p0, p0 + 300 * np.array([-line_py[1], line_py[0]])):
            assert abs(line_js @ [p[0], p[1], 1.0]) < 0.5
        tri_js = page.evaluate(
            "([a, b]) => PlanningGeometry.triangulate(planningApp.views[0], a, planningApp.views[1], b)",
            [uv1.tolist(), uv2.tolist()],
        )
        p_py, gap_py = triangulate(v1, uv1, v2, uv2)
        np.testing.assert_allclose(tri_js["point"], p_py, atol=1e-6)
        assert tri_js["gap"] == pytest.approx(gap_py, abs=1e-6)


def _pick_by_clicking(page, v1, v2, uv1, uv2) -> dict:
    """Add a trajectory by clicking entry and target on both views (view 2 off the epipolar
    line, so that the picks snap); returns the picks after checking the snapping."""
    from planning.engine.views_geometry import epipolar_line

    page.click("#add-trajectory")
    _click(page, 0, uv1[0])
    _click(page, 0, uv1[1])
    # click view 2 off the epipolar line (12 px along v): the pick snaps onto it
    _click(page, 1, uv2[0] + [0.0, 12.0])
    _click(page, 1, uv2[1] + [0.0, -9.0])
    picks = page.evaluate("() => window.planningApp.state.trajectories[0].picks")
    for end, row in (("entry", 0), ("target", 1)):
        line = epipolar_line(v1, picks[end]["view1"], v2)
        assert abs(line @ [*picks[end]["view2"], 1.0]) < 0.5, end
        # the snap lands near the true correspondence (clicks are rounded to CSS pixels)
        assert np.linalg.norm(np.array(picks[end]["view2"]) - uv2[row]) < 1.5
        assert np.linalg.norm(np.array(picks[end]["view1"]) - uv1[row]) < 1.0
    return picks


def _assert_epipolar_line_drawn(page, v1, v2, picks) -> None:
    """The epipolar line of the entry pick is drawn on view 2 in the trajectory colour."""
    from planning.engine.views_geometry import epipolar_line
    from tests.fixtures_browser import canvas_pixels

    _scroll_to_views(page)
    dpr = page.evaluate("() => window.devicePixelRatio")
    pixels = canvas_pixels(page, "#view2")
    line = epipolar_line(v1, picks["entry"]["view1"], v2)
    hits = 0
    for u in np.linspace(10, 310, 40):
        v = -(line[0] * u + line[2]) / line[1]
        if not 0 <= v < helpers.SIZE:
            continue
        x, y = page.evaluate(
            "([uv]) => { const p = planningApp.panels[1]; return p.toScreen(uv); }",
            [[float(u), float(v)]],
        )
        px = pixels[int(round(y * dpr)), int(round(x * dpr))]
        if px[0] > 200 and 100 < px[1] < 170 and px[2] < 60:  # #ff8800
            hits += 1
    assert hits >= 5


def _assert_live_readouts(page) -> None:
    """Live 3D readouts: entry, length and its display."""
    c = page.evaluate("() => window.planningApp.computed(window.planningApp.state.trajectories[0])")
    assert np.linalg.norm(np.array(c["entry"]) - ENTRY) < 1.0
    assert c["length"] == pytest.approx(np.linalg.norm(TARGET - ENTRY), abs=1.5)
    assert page.inner_text("#readouts .ro-length") == f"{c['length']:.1f}"


def _drag_entry_and_check_resnap(page, v1, v2, picks) -> dict:
    """Drag the view-1 entry pick: the view-2 entry pick re-snaps to the new epipolar line.
    Returns the picks after the drag."""
    from planning.engine.views_geometry import epipolar_line

    _scroll_to_views(page)
    x, y = page.evaluate(
        "([uv]) => window.planningApp.clientPoint(0, uv)", [picks["entry"]["view1"]]
    )
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + 15, y + 10, steps=4)
    page.mouse.up()
    moved = page.evaluate("() => window.planningApp.state.trajectories[0].picks")
    assert np.linalg.norm(np.array(moved["entry"]["view1"]) - picks["entry"]["view1"]) > 3
    line = epipolar_line(v1, moved["entry"]["view1"], v2)
    assert abs(line @ [*moved["entry"]["view2"], 1.0]) < 0.5
    return moved


def _save_and_check_version(page, plan, surgeon) -> None:
    """Save with a note: version 2 holds the trajectory the page computed."""
    from webapp.planning.models import PlanVersion

    page.fill("#version-note", "first screw")
    page.click("#save-plan")
    page.wait_for_selector("#save-message.ok")
    assert "Saved version 2" in page.inner_text("#save-message")
    saved = PlanVersion.objects.get(plan=plan, number=2)
    t = saved.snapshot["trajectories"][0]
    c = page.evaluate("() => window.planningApp.computed(window.planningApp.state.trajectories[0])")
    np.testing.assert_allclose(t["entry_world"], c["entry"], atol=1e-6)
    np.testing.assert_allclose(t["target_world"], c["target"], atol=1e-6)
    assert saved.author == surgeon and "first screw" in saved.summary


def _reload_and_export(page, url, moved) -> None:
    """Reload shows the saved picks and version; JSON and PNG exports download."""
    _open(page, url)
    reloaded = page.evaluate("() => window.planningApp.state.trajectories")
    assert len(reloaded) == 1 and reloaded[0]["picks"] == moved
    assert "v2" in page.inner_text("#version-list")

    with page.expect_download() as info:
        page.click("#export-json")
    data = json.loads(open(info.value.path()).read())
    assert data["version"]["number"] == 2
    assert data["version"]["snapshot"]["trajectories"][0]["name"] == "Trajectory 1"
    with page.expect_download() as info:
        page.click("#export-png")
    assert open(info.value.path(), "rb").read(8) == b"\x89PNG\r\n\x1a\n"


def test_surgeon_plans_by_clicking_saves_reloads_exports(
    plan_setup, login_page, page_url, surgeon_a
):
    v1, v2 = _views()
    uv1 = helpers.project(helpers.pose(0.0), np.stack([ENTRY, TARGET]))
    uv2 = helpers.project(helpers.pose(90.0), np.stack([ENTRY, TARGET]))
    page = login_page(surgeon_a)
    url = page_url("planning:plan", plan_setup.pk)
    _open(page, url)
    assert "lacks a calibration" in page.inner_text("body")
    assert "C-arm angles" in page.inner_text("[data-testid=view1-source]")

    picks = _pick_by_clicking(page, v1, v2, uv1, uv2)
    _assert_epipolar_line_drawn(page, v1, v2, picks)
    _assert_live_readouts(page)
    moved = _drag_entry_and_check_resnap(page, v1, v2, picks)
    _save_and_check_version(page, plan_setup, surgeon_a)
    _reload_and_export(page, url, moved)
    assert _real_errors(page) == []


def test_tool_pose_appears_on_both_views(plan_setup, login_page, page_url, surgeon_a):
    from webapp.planning import services

    page = login_page(surgeon_a)
    _open(page, page_url("planning:plan", plan_setup.pk))
    sample = services.receive_tool_pose(
        plan_setup, surgeon_a, {"frame": "ct", "tip": ENTRY.tolist(), "axis": [0, 1, 0]}
    )
    page.wait_for_function(
        f"() => window.planningApp.state.tool && window.planningApp.state.tool.id === {sample.pk}",
        timeout=3000,
    )
    tool = page.evaluate("() => window.planningApp.state.tool")
    for i, lao in enumerate((0.0, 90.0)):
        np.testing.assert_allclose(
            tool["views"][i]["tip"], helpers.project(helpers.pose(lao), ENTRY)[0], atol=1e-6
        )
    assert "Tool (ct tip+axis)" in page.inner_text("#tool-status")


def test_other_team_surgeon_gets_404(plan_setup, login_page, page_url, surgeon_b):
    page = login_page(surgeon_b)
    response = page.goto(page_url("planning:plan", plan_setup.pk))
    assert response.status == 404
    response = page.goto(page_url("planning:view-image", plan_setup.pk, 1))
    assert response.status == 404


def test_postop_achieved_trajectory_by_clicking(plan_setup, login_page, page_url, surgeon_a, patient_a):
    from webapp.planning import services
    from webapp.planning.models import PostOpOutcome
    from webapp.records.models import CArm

    picks = helpers.picks_for(ENTRY, TARGET, helpers.pose(0.0), helpers.pose(90.0))
    services.save_version(plan_setup, surgeon_a, [{"name": "S1", "colour": "#00b4ff", "diameter_mm": 5, "picks": picks}], "")
    carm = CArm.objects.get()
    p1 = helpers.make_xray(patient_a, carm, 0.0, description="post-op AP")
    p2 = helpers.make_xray(patient_a, carm, 90.0, description="post-op lateral")
    achieved_entry, achieved_target = ENTRY + [2.0, 0.0, 0.0], TARGET + [0.0, 0.0, 3.0]
    uv1 = helpers.project(helpers.pose(0.0), np.stack([achieved_entry, achieved_target]))
    uv2 = helpers.project(helpers.pose(90.0), np.stack([achieved_entry, achieved_target]))
    page = login_page(surgeon_a)
    _open(page, page_url("planning:postop", plan_setup.pk) + f"?xray1={p1.pk}&xray2={p2.pk}")
    _click(page, 0, uv1[0])
    _click(page, 0, uv1[1])
    _click(page, 1, uv2[0])
    _click(page, 1, uv2[1])
    page.click("#record-outcome")
    page.wait_for_selector("#save-message.ok")
    outcome = PostOpOutcome.objects.get(plan=plan_setup)
    assert outcome.trajectory_name == "S1" and outcome.version.number == 2
    assert outcome.entry_deviation_mm == pytest.approx(2.0, abs=0.6)
    assert outcome.tip_deviation_mm == pytest.approx(3.0, abs=0.6)
    assert "entry" in page.inner_text("#save-message")
    page.goto(page_url("planning:outcomes"))
    page.wait_for_selector("#outcome-chart .main-svg")
    assert "Browser plan" in page.inner_text("body")
