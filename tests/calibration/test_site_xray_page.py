"""The X-ray page says which calibration dewarped the image and warns when it was far."""

from __future__ import annotations

from django.core.files.base import ContentFile
from django.urls import reverse

from tests.calibration.site_helpers import phantom_png


def test_xray_page_names_the_profile_and_warns(client, surgeon_a, patient_a, carm, clipon, cal_admin):
    from webapp.calibration.models import CalibrationProfile
    from webapp.calibration.services import activate_profile, dewarp_xray, run_calibration
    from webapp.records.models import XrayImage

    profile = CalibrationProfile.objects.create(carm=carm, version=1, phantom=clipon, calibrated_by=cal_admin)
    profile.image_file.save("phantom.png", ContentFile(phantom_png(seed=6)))
    activate_profile(run_calibration(profile, (0.5, 0.5)), cal_admin)
    xray = XrayImage(patient=patient_a, carm=carm, file_format="png", rows=512, cols=512,
                     primary_angle_deg=30.0, secondary_angle_deg=0.0)
    xray.original_file.save("x.png", ContentFile(phantom_png(seed=7)), save=False)
    xray.save()
    dewarp_xray(xray)
    client.force_login(surgeon_a)
    page = client.get(reverse("records:xray-detail", args=[xray.pk])).content.decode()
    assert "calibration v1</a> of OEC test II (30° from this X-ray" in page
    assert 'id="dewarp-warning"' in page and "is 30° from this X-ray&#x27;s angle" in page
