"""A C-arm that stores mirrored images: its flag is applied when the image is read, so the
profile describes the image as seen from the source and finds no flip of its own."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from django.core.files.base import ContentFile

from calibration.engine.io import to_uint16
from calibration.engine.phantom import builtin_phantom
from simulation.phantom_frames import SimGeometry, simulate_phantom_image


def _mirrored_png() -> bytes:
    sim = simulate_phantom_image(builtin_phantom("clipon_two_layer"), SimGeometry(spacing=(0.5, 0.5)), rng=21, flip=True)
    ok, buf = cv2.imencode(".png", to_uint16(sim.image))
    assert ok
    return buf.tobytes()


@pytest.mark.parametrize("flag", [False, True])
def test_flip_flag_is_applied_once(carm, clipon, cal_admin, flag):
    from webapp.calibration.models import CalibrationProfile
    from webapp.calibration.services import run_calibration

    carm.flip_horizontal = flag
    carm.save()
    profile = CalibrationProfile.objects.create(carm=carm, version=1, phantom=clipon, calibrated_by=cal_admin)
    profile.image_file.save("phantom.png", ContentFile(_mirrored_png()))
    data = run_calibration(profile, (0.5, 0.5)).data
    # With the device flag set, reading undoes the mirroring; without it the engine finds it.
    assert data["flip_horizontal"] is (not flag)
    assert data["device_flags_applied"]["flip_horizontal"] is flag
    assert profile.rms_mm < 0.1
    assert np.isfinite(data["source_mm"]).all()
