"""The one X-ray path's camera (profile chosen once, rotated grids) and display rule
(window inside the exposed field)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.core.factories import isolated_media, make_carm, make_xray  # noqa: F401


def _profile(carm, *, flip: bool, width=60, height=40):
    from webapp.calibration.models import CalibrationProfile

    K = [[3000.0, 0.0, 31.0], [0.0, 3000.0, 18.0], [0.0, 0.0, 1.0]]
    return CalibrationProfile.objects.create(
        carm=carm,
        version=1,
        status=CalibrationProfile.Status.ACTIVE,
        data={
            "K": K,
            "width": width,
            "height": height,
            "pixel_spacing_mm": [0.3, 0.3],
            "source_mm": [0.0, 0.0, -900.0],
            "flip_horizontal": flip,
        },
    )


def test_profile_mirror_applies_with_its_intrinsics(patient_a):
    from webapp.xray_view import camera_for_xray, read_view

    carm = make_carm("Flat panel calibrated mirrored")
    profile = _profile(carm, flip=True)
    xray = make_xray(patient_a, carm=carm)
    stored = np.asarray(read_view(xray).pixels)
    ramp_rises_left = stored[:, :5].mean() > stored[:, -5:].mean()
    assert ramp_rises_left, "the profile's mirror was not applied"
    found = camera_for_xray(xray)
    assert found.calibrated and f"v{profile.version}" in found.source
    np.testing.assert_allclose(found.camera.K, np.asarray(profile.data["K"]))


def test_rotated_device_swaps_the_header_grid(patient_a):
    from webapp.xray_view import camera_for_xray, read_view

    carm = make_carm("Rotating flat panel", rotate_deg=90)
    xray = make_xray(patient_a, carm=carm, rows=40, cols=60)
    xray.pixel_spacing_x_mm, xray.pixel_spacing_y_mm = 0.2, 0.4
    xray.save()
    view = read_view(xray)
    assert view.pixels.shape == (60, 40)
    camera = camera_for_xray(xray).camera
    assert (camera.width, camera.height) == (40, 60)
    # columns of the rotated image run along the stored rows: their spacing is sy
    assert camera.pixel_spacing_mm == pytest.approx((0.4, 0.2))


def test_unknown_camera_is_refused_in_words(patient_a):
    from webapp.xray_view import XrayUnavailable, camera_for_xray

    xray = make_xray(patient_a)
    xray.distance_source_to_detector_mm = None
    xray.save()
    with pytest.raises(XrayUnavailable, match="geometry is unknown"):
        camera_for_xray(xray)


def test_display_window_ignores_a_black_collimated_border():
    from webapp.xray_view import display_uint8

    rng = np.random.default_rng(3)
    image = np.zeros((100, 100), np.float32)
    image[20:80, 20:80] = 30000 + rng.normal(0, 2000, (60, 60))  # the exposed field
    shown = display_uint8(image).astype(float)
    inside = shown[25:75, 25:75]
    # the field spans most of the grey range instead of a sliver near white
    assert inside.max() - inside.min() > 200
    assert 90 < inside.mean() < 170


def test_monochrome1_is_shown_inverted():
    from webapp.xray_view import display_uint8

    image = np.tile(np.linspace(0, 4000, 50, dtype=np.float32), (20, 1))
    normal = display_uint8(image, "MONOCHROME2").astype(int)
    inverted = display_uint8(image, "MONOCHROME1").astype(int)
    np.testing.assert_array_equal(normal + inverted, np.full_like(normal, 255))
