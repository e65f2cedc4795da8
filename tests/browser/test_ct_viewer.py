"""The CT viewer in a real browser: three views render and W/L presets change pixels."""

from __future__ import annotations

import numpy as np
import pytest

from tests.browser.volumes import affine_for, phantom_hu, save_study
from tests.conftest import shared_path
from tests.fixtures_browser import canvas_pixels

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

VIEWS = ("axial", "coronal", "sagittal")


def wait_until_rendered(page) -> None:
    page.wait_for_function(
        "() => window.orthofuseViewer && (window.orthofuseViewer.ready || window.orthofuseViewer.error)",
        timeout=90_000,
    )
    error = page.evaluate("() => window.orthofuseViewer.error")
    assert error is None, f"viewer error: {error}; console: {page.console_errors}"
    page.wait_for_function(
        "() => Object.values(window.orthofuseViewer.renderCounts).every((n) => n > 0)",
        timeout=30_000,
    )


def view_pixels(page) -> dict[str, np.ndarray]:
    return {name: canvas_pixels(page, f'[data-view="{name}"]') for name in VIEWS}


def click_preset_and_wait(page, preset: str) -> None:
    before = page.evaluate("() => window.orthofuseViewer.renderCount")
    page.click(f'button[data-preset="{preset}"]')
    page.wait_for_function(
        f"() => window.orthofuseViewer.renderCount >= {before} + 3", timeout=30_000
    )
    # One more animation frame so the composited canvas holds the new image.
    page.evaluate("() => new Promise((done) => requestAnimationFrame(() => done()))")


def assert_views_show_the_volume(page) -> dict[str, np.ndarray]:
    pixels = view_pixels(page)
    for name, rgba in pixels.items():
        grey = rgba[..., :3].astype(float).mean(axis=2)
        assert rgba.shape[0] > 50 and rgba.shape[1] > 50, f"{name} canvas is {rgba.shape}"
        # Not blank: lit pixels with many distinct grey levels (a thin slab of a few
        # slices fills little of the sagittal and coronal views, so no big share is asked).
        lit = grey > 30
        assert lit.mean() > 0.01, f"{name} view has almost no lit pixels ({lit.mean():.2%})"
        assert grey.std() > 5.0, f"{name} view looks blank (std {grey.std():.2f})"
        levels = len(np.unique(np.rint(grey[lit])))
        assert levels >= 16, f"{name} view shows only {levels} grey levels"
    return pixels


def check_presets_change_pixels(page) -> None:
    click_preset_and_wait(page, "bone")
    voi = page.evaluate("() => window.orthofuseViewer.voi()")
    for name in VIEWS:
        assert voi[name]["window"] == pytest.approx(2500, abs=1)
        assert voi[name]["level"] == pytest.approx(480, abs=1)
    bone = view_pixels(page)
    click_preset_and_wait(page, "soft")
    voi = page.evaluate("() => window.orthofuseViewer.voi()")
    for name in VIEWS:
        assert voi[name]["window"] == pytest.approx(400, abs=1)
        assert voi[name]["level"] == pytest.approx(40, abs=1)
    soft = view_pixels(page)
    for name in VIEWS:
        bone_grey = bone[name][..., :3].astype(float).mean(axis=2)
        soft_grey = soft[name][..., :3].astype(float).mean(axis=2)
        lit = np.maximum(bone_grey, soft_grey) > 10
        changed = (np.abs(bone_grey - soft_grey) > 20) & lit
        share = changed.sum() / max(lit.sum(), 1)
        assert changed.sum() > 200 and share > 0.2, (
            f"{name}: presets changed {changed.sum()} pixels ({share:.1%} of the lit area)"
        )


def test_synthetic_volume_renders_three_views_and_presets_change_pixels(
    built_frontend, login_page, page_url, surgeon_a, patient_a
):
    study = save_study(patient_a, phantom_hu(), affine_for())
    page = login_page(surgeon_a)
    page.goto(page_url("records:study-detail", study.pk))
    wait_until_rendered(page)
    assert page.evaluate("() => window.orthofuseViewer.preset") == "soft"
    # Radiological convention: patient right on screen left, anterior / superior at the top.
    expected = {"axial": ("A", "R"), "coronal": ("S", "R"), "sagittal": ("S", "A")}
    for view, (top, left) in expected.items():
        assert page.text_content(f'[data-orient="{view}-top"]') == top, view
        assert page.text_content(f'[data-orient="{view}-left"]') == left, view
    assert_views_show_the_volume(page)
    check_presets_change_pixels(page)


def test_slices_running_toward_the_feet_render(
    built_frontend, login_page, page_url, surgeon_a, patient_a
):
    """A left-handed voxel frame (k toward the feet) is reordered in the browser."""
    study = save_study(patient_a, phantom_hu(seed=3), affine_for(flip_k=True))
    page = login_page(surgeon_a)
    page.goto(page_url("records:study-detail", study.pk))
    wait_until_rendered(page)
    assert_views_show_the_volume(page)
    info = page.evaluate("() => window.orthofuseViewer.sliceInfo('axial')")
    assert info["count"] == 24


def test_real_jpeg2000_series_renders_and_presets_change_pixels(
    built_frontend, login_page, page_url, surgeon_a, patient_a
):
    series = shared_path("dicom", "ct_series_abdomen_j2k")
    ct_import = pytest.importorskip("webapp.records.ct_import")
    files = sorted(path for path in series.iterdir() if path.is_file())
    study = ct_import.import_ct_study(files, patient_a, user=surgeon_a)
    assert study.status == "ready"
    page = login_page(surgeon_a)
    page.goto(page_url("records:study-detail", study.pk))
    wait_until_rendered(page)
    info = page.evaluate("() => window.orthofuseViewer.sliceInfo('axial')")
    assert info["count"] == 20
    assert_views_show_the_volume(page)
    check_presets_change_pixels(page)
    assert not [e for e in page.console_errors if "orthofuse" in e.lower()]


def test_keyboard_scrolls_slices_and_switches_tools(
    built_frontend, login_page, page_url, surgeon_a, patient_a
):
    study = save_study(patient_a, phantom_hu(seed=1), affine_for())
    page = login_page(surgeon_a)
    page.goto(page_url("records:study-detail", study.pk))
    wait_until_rendered(page)
    page.hover('[data-view="axial"]')
    start = page.evaluate("() => window.orthofuseViewer.sliceInfo('axial').index")
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowDown")
    moved = page.evaluate("() => window.orthofuseViewer.sliceInfo('axial').index")
    assert abs(moved - start) == 2
    page.keyboard.press("p")
    assert page.evaluate("() => window.orthofuseViewer.primaryTool") == "pan"
    assert page.get_attribute('button[data-tool="pan"]', "aria-pressed") == "true"
    page.keyboard.press("4")
    assert page.evaluate("() => window.orthofuseViewer.preset") == "bone"
    page.keyboard.press("w")
    assert page.evaluate("() => window.orthofuseViewer.primaryTool") == "windowLevel"
    # Away from the viewer the page keeps its keys.
    page.mouse.move(5, 5)
    page.keyboard.press("p")
    assert page.evaluate("() => window.orthofuseViewer.primaryTool") == "windowLevel"


@pytest.mark.parametrize("flip_k", [False, True], ids=["k-to-head", "k-to-feet"])
def test_views_follow_radiological_orientation(
    built_frontend, login_page, page_url, surgeon_a, patient_a, flip_k
):
    """Axial: anterior at the top (the posterior bone rod is drawn low). Sagittal: head at
    the top (the rod widens with k, so it is wider at the top exactly when k runs to the
    head). Holds for both slice orders, so the browser keeps voxels at their LPS places."""
    study = save_study(patient_a, phantom_hu(seed=2), affine_for(flip_k=flip_k))
    page = login_page(surgeon_a)
    page.goto(page_url("records:study-detail", study.pk))
    wait_until_rendered(page)
    pixels = view_pixels(page)
    bone_axial = pixels["axial"][..., :3].min(axis=2) > 250
    rows = np.nonzero(bone_axial)[0]
    assert rows.size > 50
    assert rows.mean() > bone_axial.shape[0] * 0.55, "posterior rod is not in the lower half"
    bone_sagittal = pixels["sagittal"][..., :3].min(axis=2) > 250
    widths = bone_sagittal.sum(axis=1)
    lit_rows = np.nonzero(widths)[0]
    assert lit_rows.size > 20
    quarter = max(lit_rows.size // 4, 1)
    top = widths[lit_rows[:quarter]].mean()
    bottom = widths[lit_rows[-quarter:]].mean()
    if flip_k:
        assert bottom > top * 1.3, f"rod widths top {top:.1f} px, bottom {bottom:.1f} px"
    else:
        assert top > bottom * 1.3, f"rod widths top {top:.1f} px, bottom {bottom:.1f} px"


def test_unreadable_volume_shows_the_reason(
    built_frontend, login_page, page_url, surgeon_a, patient_a
):
    from django.core.files.base import ContentFile

    study = save_study(patient_a, phantom_hu((4, 8, 8)), affine_for())
    study.volume_file.save("broken.npy", ContentFile(b"not a volume"), save=True)
    page = login_page(surgeon_a)
    page.goto(page_url("records:study-detail", study.pk))
    page.wait_for_function("() => window.orthofuseViewer && window.orthofuseViewer.error")
    status = page.text_content("[data-viewer-status]")
    assert "cannot be read" in status
    assert page.get_attribute("[data-ct-viewer]", "data-state") == "error"
