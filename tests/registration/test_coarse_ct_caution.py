"""A pose registered to a coarse CT (voxels above 2 mm) is stored with a caution that its
depth may be off; a fine CT's is not, and a refusal is never given one."""

from __future__ import annotations

import time
from types import SimpleNamespace

import numpy as np
import pytest

from geometry.camera import Camera
from registration.engine.quality import COARSE_CT_VOXEL_MM, coarse_ct_caution
from tests.core.factories import isolated_media, make_study, make_xray  # noqa: F401


@pytest.mark.parametrize(
    ("spacing", "cautioned"),
    [((0.8, 0.8, 1.0), False), ((1.0, 1.0, COARSE_CT_VOXEL_MM), False),
     ((0.7, 0.7, 3.0), True), ((3.0, 3.0, 3.0), True), ((), False), (None, False)],
)
def test_the_caution_follows_the_largest_voxel_edge(spacing, cautioned):
    text = coarse_ct_caution(spacing)
    assert bool(text) is cautioned
    if cautioned:
        assert "depth" in text and f"{max(spacing):.1f} mm" in text


def _store(patient, spacing, status: str):
    from webapp.xray_registration.models import Registration
    from webapp.xray_registration.services.running import _store_outcome

    study = make_study(patient, spacing=spacing)
    reg = Registration.objects.create(xray=make_xray(patient), study=study)
    res = SimpleNamespace(status=status)
    out = {"message": "registered in training-free mode" if status == "ok" else "refused",
           "T_cam_from_world": np.eye(4).tolist() if status == "ok" else None,
           "n_correspondences": 0, "n_inliers": 0, "similarity": 0.9}
    prepared = SimpleNamespace(camera=Camera.from_geometry(60, 40, 1000.0, 1.0, 1.0))
    _store_outcome(reg, res, out, prepared, {"similarity": 0.9}, {}, (None, None),
                   time.perf_counter())
    reg.refresh_from_db()
    return reg


def test_a_coarse_ct_pose_is_stored_with_the_caution(patient_a):
    reg = _store(patient_a, (3.0, 3.0, 3.0), "ok")
    assert reg.status == "ok" and reg.message.startswith("registered in training-free mode; ")
    assert "depth along the beam may be off" in reg.message and reg.quality["coarse_ct"] is True


def test_a_fine_ct_pose_and_a_refusal_get_none(patient_a):
    fine = _store(patient_a, (0.8, 0.8, 1.0), "ok")
    assert fine.message == "registered in training-free mode" and "coarse_ct" not in fine.quality
    refused = _store(patient_a, (3.0, 3.0, 3.0), "failed")
    assert refused.message == "refused"
