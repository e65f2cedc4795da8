"""A phantom image uploaded by a calibration admin becomes a profile through a real worker."""

from __future__ import annotations

import pytest

from tests.calibration.site_helpers import phantom_png
from tests.jobs.conftest import wait_for


@pytest.mark.worker
def test_calibration_job_computes_a_profile(celery_worker, carm, clipon, cal_admin):
    from webapp.calibration.models import CalibrationProfile
    from webapp.calibration.services import start_calibration
    from webapp.jobs.models import Job

    profile = start_calibration(carm, clipon, phantom_png(seed=3), user=cal_admin)
    assert profile.status == CalibrationProfile.Status.COMPUTING

    job = Job.objects.get(kind="calibrate_carm", params__profile_id=profile.pk)

    def finished():
        job.refresh_from_db()
        return job.is_finished

    wait_for(finished, timeout=120, what="the calibration job")
    assert job.status == Job.Status.SUCCEEDED, job.error
    profile.refresh_from_db()
    assert profile.status == CalibrationProfile.Status.DRAFT
    data = profile.data
    assert data["width"] == 512 and data["height"] == 512
    assert data["forward"]["order"] >= 3 and len(data["forward"]["coeffs_x"]) >= 10
    assert profile.rms_mm < 0.2
    assert abs(data["source_mm"][2] + 1000.0) < 20.0
    assert profile.version == 1 and profile.beads_used > 50
