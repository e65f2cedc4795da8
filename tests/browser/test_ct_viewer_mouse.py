"""OHIF-style mouse bindings of the CT viewer: wheel scrolls, left drag windows, middle
drag pans, right drag zooms, crosshairs are drawn and a crosshairs click moves the others."""

from __future__ import annotations

import numpy as np
import pytest

from tests.browser.test_ct_viewer import wait_until_rendered
from tests.browser.volumes import affine_for, phantom_hu, save_study

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def viewer_page(built_frontend, login_page, page_url, surgeon_a, patient_a):
    study = save_study(patient_a, phantom_hu((24, 48, 56), seed=7), affine_for())
    page = login_page(surgeon_a)
    page.goto(page_url("records:study-detail", study.pk))
    wait_until_rendered(page)
    return page


def centre_of(page, view: str) -> tuple[float, float]:
    box = page.locator(f'[data-view="{view}"]').bounding_box()
    return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2


def drag(page, view: str, dx: float, dy: float, button: str) -> None:
    x, y = centre_of(page, view)
    page.mouse.move(x, y)
    page.mouse.down(button=button)
    for step in range(1, 11):
        page.mouse.move(x + dx * step / 10, y + dy * step / 10)
    page.mouse.up(button=button)


def hook(page, expression: str):
    return page.evaluate(f"() => window.orthofuseViewer.{expression}")


def test_wheel_scrolls_slices(viewer_page):
    page = viewer_page
    start = hook(page, "sliceInfo('axial')")
    x, y = centre_of(page, "axial")
    page.mouse.move(x, y)
    for _ in range(3):
        page.mouse.wheel(0, 120)
        page.wait_for_timeout(50)
    after = hook(page, "sliceInfo('axial')")
    assert after["count"] == start["count"] == 24
    assert abs(after["index"] - start["index"]) == 3


def test_left_drag_changes_window_level_in_all_views(viewer_page):
    page = viewer_page
    before = hook(page, "voi()")
    drag(page, "axial", 80, 40, "left")
    after = hook(page, "voi()")
    assert after["axial"] != pytest.approx(before["axial"], abs=1)
    # The VOI synchroniser keeps the three views on the same window.
    for view in ("coronal", "sagittal"):
        assert after[view]["window"] == pytest.approx(after["axial"]["window"], abs=0.5)
        assert after[view]["level"] == pytest.approx(after["axial"]["level"], abs=0.5)


def test_middle_drag_pans_and_right_drag_zooms(viewer_page):
    page = viewer_page
    camera = hook(page, "camera('coronal')")
    drag(page, "coronal", 60, 0, "middle")
    panned = hook(page, "camera('coronal')")
    moved = np.linalg.norm(np.subtract(panned["focalPoint"], camera["focalPoint"]))
    assert moved > 1.0, f"pan moved the focal point {moved:.3f} mm"
    assert panned["parallelScale"] == pytest.approx(camera["parallelScale"], rel=1e-6)
    drag(page, "coronal", 0, 80, "right")
    zoomed = hook(page, "camera('coronal')")
    assert abs(zoomed["parallelScale"] - camera["parallelScale"]) > 0.05 * camera["parallelScale"]
    # Reset (R) restores the camera.
    page.keyboard.press("r")
    page.wait_for_timeout(100)
    reset = hook(page, "camera('coronal')")
    assert reset["parallelScale"] == pytest.approx(camera["parallelScale"], rel=1e-3)


def test_crosshairs_are_drawn_and_a_click_moves_the_other_views(viewer_page):
    page = viewer_page
    for view in ("axial", "coronal", "sagittal"):
        lines = page.locator(f'[data-view="{view}"] svg line').count()
        assert lines >= 2, f"{view}: {lines} crosshair lines drawn"
    before = {view: hook(page, f"sliceInfo('{view}')")["index"] for view in ("coronal", "sagittal")}
    coronal_y = hook(page, "camera('coronal')")["focalPoint"][1]
    sagittal_x = hook(page, "camera('sagittal')")["focalPoint"][0]
    page.hover('[data-view="axial"]')
    page.keyboard.press("c")
    assert hook(page, "primaryTool") == "crosshairs"
    box = page.locator('[data-view="axial"]').bounding_box()
    page.mouse.click(box["x"] + box["width"] * 0.3, box["y"] + box["height"] * 0.3)
    # Cornerstone holds a lone click back for its double-click window (~400 ms).
    page.wait_for_function(
        f"() => window.orthofuseViewer.sliceInfo('coronal').index !== {before['coronal']}",
        timeout=5_000,
    )
    after = {view: hook(page, f"sliceInfo('{view}')")["index"] for view in ("coronal", "sagittal")}
    assert after["coronal"] != before["coronal"]
    assert after["sagittal"] != before["sagittal"]
    # Up-left in the axial view is anterior (smaller LPS y) and patient right (smaller x).
    assert hook(page, "camera('coronal')")["focalPoint"][1] < coronal_y - 2.0
    assert hook(page, "camera('sagittal')")["focalPoint"][0] < sagittal_x - 2.0


def test_centre_on_moves_every_plane_through_the_point(viewer_page):
    page = viewer_page
    # Voxel (i, j, k) = (10, 30, 5) of affine_for(): origin (-20, -15, 100), spacing 0.8/0.8/2.5.
    point = [-20.0 + 10 * 0.8, -15.0 + 30 * 0.8, 100.0 + 5 * 2.5]
    page.evaluate("(p) => window.orthofuseViewer.centreOn(p)", point)
    for view in ("axial", "coronal", "sagittal"):
        camera = hook(page, f"camera('{view}')")
        normal = np.asarray(camera["viewPlaneNormal"])
        offset = float(np.dot(np.subtract(camera["focalPoint"], point), normal))
        assert abs(offset) < 1e-3, f"{view} plane is {offset:.4f} mm from the point"
    assert hook(page, "sliceInfo('axial')")["index"] == 5
