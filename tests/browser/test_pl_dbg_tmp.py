from tests.browser.test_planning_ct import *  # noqa


def test_dbg(registered_plan, login_page, page_url, surgeon_a, built_frontend):
    plan = registered_plan[0]
    page = login_page(surgeon_a)
    page.goto(page_url("planning:plan", plan.pk))
    page.wait_for_function("() => window.orthofuseViewer && window.orthofuseViewer.ready")
    page.wait_for_timeout(2000)
    print(
        page.evaluate(
            """() => { const v = window.orthofuseViewer.viewer; return v.views.map(view => { const vp = v.engine.getViewport(view.viewportId); return [view.name, view.element.clientWidth, view.element.clientHeight, vp.canvas && vp.canvas.clientWidth, vp.canvas && vp.canvas.clientHeight, vp.canvas && vp.canvas.width, view.element.getBoundingClientRect().height]; }); }"""
        )
    )
    print(
        page.evaluate(
            "() => [window.PlanningCT && window.PlanningCT.drawn, window.planningApp.state.trajectories.length]"
        )
    )
    page.screenshot(path="/tmp/pl_shot2.png", full_page=True)
