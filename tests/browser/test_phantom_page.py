"""The phantom page in Chromium: a calibration admin draws a phantom with the form, sees the
expected projection of the drawing update beside it (and the reason when a parameter is
refused), saves it and sees its preview image load on the phantom's page; all under the
site's CSP (script-src 'self': no console errors)."""

from __future__ import annotations

import pytest

IMAGE_WIDTH = "img => (img.complete && !img.hidden) ? img.naturalWidth : 0"
# a function, not an expression: the page's CSP forbids evaluating strings
LOADED = "(id) => { const img = document.getElementById(id); return !img.hidden && img.complete && img.naturalWidth > 0; }"


@pytest.fixture
def chromium_login(request, transactional_db, live_server):
    """The suite's ``login_page`` factory; the test is skipped, with the reason, when
    Chromium is missing or cannot start (the browser is launched only here, so that its
    failure to start is caught)."""
    try:
        return request.getfixturevalue("login_page")
    except pytest.skip.Exception:
        raise
    except Exception as exc:  # noqa: BLE001 - any launch failure means no browser here
        first_line = (str(exc).strip().splitlines() or [""])[0]
        pytest.skip(f"Chromium could not start ({type(exc).__name__}: {first_line})")


def _preview_src(page) -> str:
    return page.eval_on_selector("#draft-preview-image", "img => img.hidden ? '' : img.src")


@pytest.mark.browser
def test_admin_draws_a_phantom_and_sees_the_preview(chromium_login, page_url, make_user):
    from webapp.calibration.models import Phantom

    admin = make_user("phantom_admin", "CalibrationAdmin")
    page = chromium_login(admin)
    page.goto(page_url("calibration:phantom-list"))
    # the default drawing (a square bead plate) is previewed as soon as the page opens
    page.wait_for_function(LOADED, arg="draft-preview-image")
    first = _preview_src(page)
    assert first.startswith("blob:")
    assert page.is_visible("[data-field=marker]") and not page.is_visible("[data-field=layer_gap_mm]")

    page.fill("#id_name", "Browser two-layer")
    page.select_option("#id_kind", "two-layer")
    assert page.is_visible("[data-field=layer_gap_mm]") and not page.is_visible("[data-field=marker]")
    page.select_option("#id_lattice", "hex")
    page.fill("#id_pitch_mm", "12")
    page.wait_for_function(
        "(src) => { const img = document.getElementById('draft-preview-image');"
        " return !img.hidden && img.src !== src && img.complete && img.naturalWidth > 0; }",
        arg=first,
    )
    # a refused parameter: the preview gives way to the reason in words
    page.fill("#id_layer_gap_mm", "5")
    page.wait_for_function("() => document.getElementById('draft-preview-image').hidden")
    status = page.inner_text("#draft-preview-status")
    assert "gap between the layers" in status
    page.fill("#id_layer_gap_mm", "60")
    page.wait_for_function(LOADED, arg="draft-preview-image")
    assert "Expected projection" in page.inner_text("#draft-preview-status")

    page.click("#draw-submit")
    page.wait_for_selector("#preview-image")
    page.wait_for_function(LOADED, arg="preview-image")
    width = page.eval_on_selector("#preview-image", IMAGE_WIDTH)
    assert width == 768
    assert "Drawing parameters" in page.content()
    row = Phantom.objects.get(name="Browser two-layer")
    assert row.kind == "two-layer" and row.definition["design"]["lattice"] == "hex"
    assert row.definition["design"]["layer_gap_mm"] == 60.0 and row.created_by == admin
    # the browser logs the refused preview's 422; nothing else (no CSP violation, no error)
    unexpected = [e for e in page.console_errors if "status of 422" not in e]
    assert not unexpected and len(page.console_errors) >= 1, page.console_errors
