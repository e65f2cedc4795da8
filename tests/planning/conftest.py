from __future__ import annotations

import pytest

from tests.planning import helpers


@pytest.fixture
def media(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    return tmp_path / "media"


@pytest.fixture
def carm(db):
    return helpers.make_carm()


@pytest.fixture
def two_views(media, patient_a, carm):
    """AP (LAO 0) and lateral (LAO 90) X-rays of patient A."""
    return helpers.make_xray(patient_a, carm, 0.0), helpers.make_xray(patient_a, carm, 90.0)


@pytest.fixture
def plan_a(two_views, patient_a, surgeon_a):
    from webapp.planning import services

    return services.create_plan(patient_a, surgeon_a, "L4 pedicle screws", *two_views)
