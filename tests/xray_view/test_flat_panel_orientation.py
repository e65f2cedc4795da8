"""A flat panel that stores its images mirrored: every reader of a stored X-ray (the
registration job, the planning views, the X-ray preview) must see the re-oriented image,
the one a viewer at the source sees, never the raw mirrored file (a left/right swap
relative to the CT would be a patient-safety defect)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from tests.core.factories import isolated_media, make_carm, make_xray  # noqa: F401

ROWS, COLS = 40, 60


def _asymmetric() -> np.ndarray:
    """Dark left third, bright right two thirds, a dark dot near the top-right corner."""
    image = np.full((ROWS, COLS), 50000, np.uint16)
    image[:, : COLS // 3] = 5000
    image[4:8, COLS - 10 : COLS - 6] = 1000
    return image


def _decode(png: bytes) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_UNCHANGED).astype(float)


def _left_darker(image: np.ndarray) -> bool:
    width = image.shape[1]
    return image[:, : width // 4].mean() < image[:, -width // 4 :].mean()


@pytest.fixture
def mirrored_xray(patient_a):
    carm = make_carm("Mirroring flat panel", flip_horizontal=True)
    return make_xray(patient_a, carm=carm, image=_asymmetric())


def test_registration_input_is_reoriented(mirrored_xray):
    from webapp.xray_registration.services import prepare_xray

    prepared = prepare_xray(mirrored_xray)
    np.testing.assert_array_equal(prepared.pixels, np.fliplr(_asymmetric()).astype(np.float32))
    assert not prepared.dewarped


def test_planning_view_is_reoriented(mirrored_xray):
    from webapp.planning import services

    shown = _decode(services.xray_png(mirrored_xray))
    assert shown.shape == (ROWS, COLS)
    assert not _left_darker(shown), "the planning view shows the stored mirrored pixels"


def test_preview_is_reoriented(mirrored_xray, client, surgeon_a):
    client.force_login(surgeon_a)
    from django.urls import reverse

    response = client.get(reverse("records:xray-preview", args=[mirrored_xray.pk]))
    assert response.status_code == 200, response.content[:200]
    assert not _left_darker(_decode(response.content))


def test_unflagged_flat_panel_is_read_as_stored(patient_a):
    from webapp.xray_registration.services import prepare_xray

    xray = make_xray(patient_a, carm=make_carm("Plain flat panel"), image=_asymmetric())
    np.testing.assert_array_equal(prepare_xray(xray).pixels, _asymmetric().astype(np.float32))


def test_a_changed_device_flag_is_never_served_from_the_picture_cache(patient_a):
    from webapp.xray_view import view_png

    carm = make_carm("Panel fixed later")
    xray = make_xray(patient_a, carm=carm, image=_asymmetric())
    assert view_png(xray) == view_png(xray)  # the second one from the cache
    assert _left_darker(_decode(view_png(xray)))
    carm.flip_horizontal = True
    carm.save()
    xray.refresh_from_db()
    assert not _left_darker(_decode(view_png(xray)))
