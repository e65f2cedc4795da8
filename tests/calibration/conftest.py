"""Calibration site fixtures: a C-arm, the shipped phantoms, and a real worker."""

from __future__ import annotations

import pytest

from tests.jobs.conftest import (  # noqa: F401 - re-exported fixtures
    broker_ready,
    celery_worker,
    fast_heartbeat,
    purged_queues,
)


@pytest.fixture
def carm(db):
    from webapp.records.models import CArm

    return CArm.objects.create(
        name="OEC test II",
        detector_type=CArm.DetectorType.IMAGE_INTENSIFIER,
        pixel_spacing_x_mm=0.5,
        pixel_spacing_y_mm=0.5,
        source_to_detector_mm=1000.0,
    )


@pytest.fixture
def phantoms(db):
    from webapp.calibration.services import ensure_builtin_phantoms

    return {p.name: p for p in ensure_builtin_phantoms()}


@pytest.fixture
def clipon(phantoms):
    return phantoms["OrthoFuse clip-on two-layer phantom"]


@pytest.fixture
def cal_admin(make_user):
    return make_user("caladmin", "CalibrationAdmin")
