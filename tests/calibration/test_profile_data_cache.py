"""The chosen profile's decoded data is cached per process by its digest: repeated choices
do not read the data again, and an edited profile is never served stale."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext


@pytest.fixture
def active_profile(carm, clipon):
    from webapp.calibration.models import CalibrationProfile

    return CalibrationProfile.objects.create(
        carm=carm, version=1, phantom=clipon, status=CalibrationProfile.Status.ACTIVE,
        data={"K": [[1000.0, 0, 160], [0, 1000.0, 120], [0, 0, 1]], "note": "first"},
    )


def _data_reads(queries) -> int:
    return sum('"calibration_calibrationprofile"."data"' in q["sql"] for q in queries)


def test_the_digest_follows_the_data(active_profile):
    from webapp.calibration.models import profile_data_digest

    assert active_profile.data_digest == profile_data_digest(active_profile.data)
    active_profile.data = {**active_profile.data, "note": "second"}
    active_profile.save(update_fields=["data"])
    active_profile.refresh_from_db()
    assert active_profile.data_digest == profile_data_digest({**active_profile.data})
    assert active_profile.data["note"] == "second"


def test_a_second_choice_reads_no_data(carm, active_profile):
    from webapp.calibration.services import profile_for_angles

    assert profile_for_angles(carm, 0.0, 0.0).profile.data["note"] == "first"
    with CaptureQueriesContext(connection) as queries:
        again = profile_for_angles(carm, 0.0, 0.0).profile
    assert again.data["note"] == "first"
    assert _data_reads(queries.captured_queries) == 0


def test_an_edited_profile_is_read_afresh(carm, active_profile):
    from webapp.calibration.models import CalibrationProfile
    from webapp.calibration.services import profile_for_angles

    assert profile_for_angles(carm, 0.0, 0.0).profile.data["note"] == "first"
    stored = CalibrationProfile.objects.get(pk=active_profile.pk)
    stored.data = {**stored.data, "note": "edited"}
    stored.save()
    assert profile_for_angles(carm, 0.0, 0.0).profile.data["note"] == "edited"


def test_a_row_without_digest_is_never_cached(carm, active_profile):
    from webapp.calibration.models import CalibrationProfile
    from webapp.calibration.services import profile_for_angles

    CalibrationProfile.objects.filter(pk=active_profile.pk).update(
        data={"K": active_profile.data["K"], "note": "written around save"}, data_digest=""
    )
    assert profile_for_angles(carm, 0.0, 0.0).profile.data["note"] == "written around save"
    CalibrationProfile.objects.filter(pk=active_profile.pk).update(
        data={"K": active_profile.data["K"], "note": "again"}
    )
    assert profile_for_angles(carm, 0.0, 0.0).profile.data["note"] == "again"
