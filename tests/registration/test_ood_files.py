"""OOD shots as files: DICOM shots carry the C-arm angles in their header, PNG shots none,
and the product's reader reads both back; the shot set is seeded and reused."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dicomio import read_xray
from geometry.camera import Camera
from registration.bench.ood_bench import shots_for_ct
from registration.bench.ood_shots import generate_shots
from tests.registration.tiny_ct import synthetic_bone_ct


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    vol = synthetic_bone_ct(32, 6.0)
    return vol, generate_shots(vol, "tiny", tmp_path_factory.mktemp("shots"), 8, 4,
                               n_samples=48)


def test_dicom_shots_carry_angles_and_png_ones_none(shots):
    _, ss = shots
    assert {s.file_format for s in ss} == {"dicom", "png"}
    assert sum(s.kind == "closeup" for s in ss) >= 2
    for s in ss:
        x = read_xray(s.path)
        g = x.geometry
        cam = Camera.from_json(json.loads(s.camera_path.read_text()))
        assert (cam.width, cam.height) == (x.width, x.height)
        if s.file_format == "dicom":
            assert x.modality in ("XA", "RF") and x.photometric == s.photometric
            assert g["primary_angle_deg"] == pytest.approx(s.geometry.lao_deg, abs=0.01)
            assert g["secondary_angle_deg"] == pytest.approx(s.geometry.cranial_deg, abs=0.01)
            assert g["source_to_detector_mm"] == pytest.approx(s.geometry.sdd_mm, abs=0.01)
            assert g["source_to_patient_mm"] == pytest.approx(s.geometry.sid_mm, abs=0.01)
        else:
            assert g["primary_angle_deg"] is None and g["secondary_angle_deg"] is None
            assert x.bits_stored == 16
        assert x.pixels.max() > 1000


def test_shots_are_seeded_and_reused(shots, tmp_path):
    vol, _ = shots
    log = []
    a = shots_for_ct(vol, "tiny", tmp_path, 3, 9, log.append)
    b = shots_for_ct(vol, "tiny", tmp_path, 3, 9, log.append)
    assert any("reusing" in m for m in log)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x.geometry.T_true, y.geometry.T_true)
        np.testing.assert_allclose(x.targets, y.targets, atol=1e-3)
        assert x.params == y.params
