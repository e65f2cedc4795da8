"""A grid plate in the site: phantom definition, calibration job body, dewarping X-rays."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from django.core.files.base import ContentFile
from django.urls import reverse

from tests.calibration.plate_helpers import SP, plate, small_frame


def _png(image) -> bytes:
    ok, buf = cv2.imencode(".png", np.asarray(image).astype(np.uint16))
    assert ok
    return buf.tobytes()


@pytest.fixture
def plate_carm(db):
    from webapp.records.models import CArm

    return CArm.objects.create(
        name="II with plate",
        detector_type=CArm.DetectorType.IMAGE_INTENSIFIER,
        pixel_spacing_x_mm=SP,
        pixel_spacing_y_mm=SP,
        source_to_detector_mm=1020.0,
    )


def test_plate_profile_in_the_site(plate_carm, cal_admin, patient_a, client):
    from webapp.calibration.models import CalibrationProfile
    from webapp.calibration.services import (
        activate_profile,
        create_phantom,
        dewarp_xray,
        run_calibration,
    )
    from webapp.records.models import XrayImage

    ph = plate()
    row = create_phantom("Site plate", ph.to_dict(), cal_admin)
    assert row.kind == "grid plate" and "square lattice" in row.summary
    sim = small_frame(ph, seed=31)
    profile = CalibrationProfile.objects.create(
        carm=plate_carm, version=1, phantom=row, calibrated_by=cal_admin
    )
    profile.image_file.save("plate.png", ContentFile(_png(sim.image)))
    run_calibration(profile, (SP, SP))
    profile.refresh_from_db()
    assert profile.status == CalibrationProfile.Status.DRAFT
    assert "plate markers" in profile.message and profile.rms_mm < 0.03
    assert profile.data["source"] == "nominal"
    assert profile.data["source_mm"] == [0.0, 0.0, -1020.0]
    assert profile.data["source_to_detector_origin"] == "C-arm II with plate"
    activate_profile(profile, cal_admin)
    xray = XrayImage(patient=patient_a, carm=plate_carm, file_format="png", rows=512, cols=512,
                     primary_angle_deg=0.0, secondary_angle_deg=0.0)  # fmt: skip
    xray.original_file.save("x.png", ContentFile(_png(sim.image)), save=False)
    xray.save()
    info = dewarp_xray(xray)
    assert info["dewarped"] and info["K"][0][2] == pytest.approx(255.5)
    client.force_login(cal_admin)
    page = client.get(reverse("calibration:phantom-list"))
    assert b"grid plate" in page.content and b"Site plate" in page.content
    qa = client.get(reverse("calibration:profile-detail", args=[profile.pk]))
    assert qa.status_code == 200
