"""A real CR radiograph (JPEG 2000, MONOCHROME1) shown by the bundled 2-D DICOM view:
the image is drawn and a left drag (window/level) changes its pixels."""

from __future__ import annotations

import numpy as np
import pytest

from tests.browser.volumes import affine_for, phantom_hu, save_study
from tests.conftest import shared_path
from tests.fixtures_browser import canvas_pixels

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_radiograph_is_drawn_and_window_level_changes_it(
    built_frontend, login_page, page_url, surgeon_a, patient_a
):
    radiograph = shared_path("dicom", "pydicom_data", "RG3_J2KR.dcm").read_bytes()
    study = save_study(patient_a, phantom_hu((4, 8, 8)), affine_for())
    page = login_page(surgeon_a)
    page.route(
        "**/__test_dicom__/xray.dcm",
        lambda route: route.fulfill(status=200, body=radiograph, content_type="application/dicom"),
    )
    # Any page that loads the bundle offers window.orthofuse.mountDicomImage.
    page.goto(page_url("records:study-detail", study.pk))
    page.wait_for_function("() => window.orthofuse && window.orthofuseViewer.ready")
    page.evaluate(
        """() => {
          const element = document.createElement('div');
          element.id = 'xray';
          element.style.cssText = 'width: 360px; height: 360px; position: relative';
          document.querySelector('main').prepend(element);
          window.orthofuse.mountDicomImage(element, '/__test_dicom__/xray.dcm');
        }"""
    )
    page.wait_for_function(
        "() => ['ready', 'error'].includes(document.getElementById('xray').dataset.state)",
        timeout=60_000,
    )
    assert page.get_attribute("#xray", "data-state") == "ready", page.get_attribute(
        "#xray", "data-error"
    )
    page.wait_for_timeout(300)
    before = canvas_pixels(page, "#xray")[..., :3].astype(float).mean(axis=2)
    assert before.std() > 10.0, f"radiograph looks blank (std {before.std():.2f})"
    assert len(np.unique(np.rint(before))) > 50
    box = page.locator("#xray").bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    for step in range(1, 11):
        page.mouse.move(x + 8 * step, y + 4 * step)
    page.mouse.up()
    page.wait_for_timeout(300)
    after = canvas_pixels(page, "#xray")[..., :3].astype(float).mean(axis=2)
    changed = (np.abs(after - before) > 10).mean()
    assert changed > 0.2, f"window/level changed only {changed:.1%} of the pixels"
