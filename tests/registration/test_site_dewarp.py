"""Registering an image-intensifier shot: the site dewarps it first (calibration profile
of its C-arm), takes the camera from the profile, and registers the dewarped pixels
(run synchronously here: the job handler only wraps this service)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.core.factories import isolated_media  # noqa: F401
from tests.review.helpers import TINY_TRAINING, tiny_study


@pytest.mark.slow
def test_intensifier_shot_is_dewarped_then_registered(patient_a, surgeon_a, make_user, monkeypatch):
    from django.core.files.storage import default_storage

    from webapp.calibration.services import profile_for_xray
    from webapp.demo.builder import demo_calibrations, demo_carm, demo_xrays
    from webapp.xray_registration.models import Registration, RegistrationModel
    from webapp.xray_registration.services import run_registration, run_training

    for key, value in TINY_TRAINING.items():
        monkeypatch.setenv(key, value)
    admin = make_user("admin", superuser=True)
    study = tiny_study(patient_a)
    carm = demo_carm()
    profiles = demo_calibrations(carm, admin)
    xray = demo_xrays(patient_a, study, carm, surgeon_a)[0]
    # as uploaded: no dewarped image yet
    xray.dewarped_file.delete(save=False)
    xray.dewarp_info = {}
    xray.save()

    model = RegistrationModel.objects.create(
        study=study, preset="quick", storage_prefix="registration-models/t"
    )
    points = []
    run_training(model, lambda f, m, p: points.append(p) if p else None)
    model.refresh_from_db()
    assert model.status == "ready" and [p["step"] for p in points] == [1, 10, 20, 30, 40]
    profile = profile_for_xray(xray).profile
    assert profile is not None and profile in profiles
    # the training camera is the calibrated one of the patient's C-arm
    np.testing.assert_allclose(
        np.asarray(model.model_json["camera"]["K"]), np.asarray(profile.data["K"]), atol=1e-9
    )

    reg = Registration.objects.create(xray=xray, study=study, model=model)
    messages = []
    run_registration(reg, lambda f, m: messages.append(m))
    reg.refresh_from_db()
    xray.refresh_from_db()
    assert xray.dewarped_file and default_storage.exists(xray.dewarped_file.name)
    assert xray.dewarp_info["dewarped"] is True
    assert reg.stages["prepare"]["dewarped"] is True
    np.testing.assert_allclose(
        np.asarray(reg.camera["K"]), np.asarray(profile.data["K"]), atol=1e-9
    )
    assert reg.status in (Registration.Status.OK, Registration.Status.FAILED)
    assert reg.message
    if reg.status == Registration.Status.OK:
        assert reg.quality["true_mtre_mm"] >= 0 and reg.overlay_file
