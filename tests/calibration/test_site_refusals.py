"""Bad phantom images are refused with a clear reason and leave a failed profile, no model."""

from __future__ import annotations

import pytest
from django.core.files.base import ContentFile

from tests.calibration.site_helpers import phantom_png


def _run(carm, phantom, png: bytes, user):
    from webapp.calibration.models import CalibrationProfile
    from webapp.calibration.services import CalibrationRefused, run_calibration

    version = CalibrationProfile.objects.filter(carm=carm).count() + 1
    profile = CalibrationProfile.objects.create(carm=carm, version=version, phantom=phantom, calibrated_by=user)

    profile.image_file.save("phantom.png", ContentFile(png))
    with pytest.raises(CalibrationRefused) as info:
        run_calibration(profile, (0.5, 0.5))
    profile.refresh_from_db()
    assert profile.data == {}
    return str(info.value)


def test_blank_image_is_refused(carm, clipon, cal_admin):
    message = _run(carm, clipon, phantom_png(blank=True), cal_admin)
    assert "blank" in message.lower()


def test_wrong_phantom_is_refused(carm, phantoms, cal_admin):
    plate = phantoms["OrthoFuse dot-grid plate"]
    clipon = phantoms["OrthoFuse clip-on two-layer phantom"]
    # An image of the clip-on phantom does not fit the plate's definition, and vice versa.
    message = _run(carm, plate, phantom_png(seed=1, name="clipon_two_layer"), cal_admin)
    assert "wrong phantom" in message
    message = _run(carm, clipon, phantom_png(seed=1, name="dot_grid_plate"), cal_admin)
    assert "wrong phantom" in message


def test_too_few_beads_is_refused(carm, clipon, cal_admin):
    message = _run(carm, clipon, phantom_png(seed=2, hide_fraction=0.9), cal_admin)
    assert "beads found" in message or "quadrant" in message


def test_upload_rejects_non_image_and_png_without_spacing(carm, clipon, cal_admin):
    from webapp.calibration.models import CalibrationProfile
    from webapp.calibration.services import CalibrationRefused, start_calibration

    with pytest.raises(CalibrationRefused, match="DICOM file or a PNG"):
        start_calibration(carm, clipon, b"hello, not an image", user=cal_admin)
    carm.pixel_spacing_x_mm = None
    carm.pixel_spacing_y_mm = None
    carm.save()
    with pytest.raises(CalibrationRefused, match="pixel spacing"):
        start_calibration(carm, clipon, phantom_png(seed=0), user=cal_admin)
    assert not CalibrationProfile.objects.exists()
