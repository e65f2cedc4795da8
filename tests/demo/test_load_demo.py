"""`load_demo` builds the demo once and reuses it on the next run."""

from __future__ import annotations

import pytest
from django.core.management import call_command


@pytest.mark.slow
def test_load_demo_is_complete_and_idempotent(db, capsys, settings):
    from webapp.calibration.models import CalibrationProfile
    from webapp.planning.models import Plan
    from webapp.records.models import CArm, CTStudy, Patient, XrayImage

    settings.DEBUG = False  # a production site loads it only when forced
    call_command("load_demo", "--force")
    first = capsys.readouterr().out
    assert "user surgeon" in first and "password" in first
    counts = (Patient.objects.count(), CTStudy.objects.count(), XrayImage.objects.count(),
              CArm.objects.count(), CalibrationProfile.objects.count())
    settings.DEBUG = True  # development needs no --force
    call_command("load_demo")
    assert (Patient.objects.count(), CTStudy.objects.count(), XrayImage.objects.count(),
            CArm.objects.count(), CalibrationProfile.objects.count()) == counts
    assert counts == (1, 1, 3, 1, 2)
    study = CTStudy.objects.get()
    assert study.status == "ready" and study.shape == [112, 101, 122]
    assert CalibrationProfile.objects.filter(status="active").count() == 2
    assert Plan.objects.count() == 1
    from webapp.xray_registration.models import RegistrationModel

    model = RegistrationModel.objects.get()  # queued once, not again on the second run
    assert model.status == "training" and model.preset == "quick" and model.job.kind == "train_registration_model"
    for xray in XrayImage.objects.all():
        assert xray.dewarped_file, xray.description
        assert xray.dewarp_info["dewarped"]
        if xray.description.startswith("Oblique"):  # 22° from the nearest calibration
            assert "22° from this X-ray's angle" in xray.dewarp_info["warning"]
        else:
            assert xray.dewarp_info["warning"] == ""
        assert len(xray.ground_truth["T_cam_from_world"]) == 4
