"""A pose registered to a coarse CT (voxels above 2 mm) carries a caution that its depth
may be off, on every path that registers a stored X-ray (``register_stored``: the site's
job, ``register_xray``, the benchmarks); a fine CT's pose and a refusal get none."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from geometry.camera import Camera
from registration.engine import stored_image
from registration.engine.pipeline import RegistrationResult
from registration.engine.quality import COARSE_CT_VOXEL_MM, coarse_ct_caution


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


def _register(monkeypatch, spacing, status: str, check: str = "consistency") -> RegistrationResult:
    """``register_stored`` on a CT of ``spacing`` (mm), the pipeline answering ``status``
    (a refusal by the self-check ``check``)."""

    def fake(volume, model, li, valid, camera, **kwargs):
        ok = status == "ok"
        stages = {"quality": {} if ok else {"failed_check": check}}
        return RegistrationResult(status, "registered in training-free mode" if ok else "refused",
                                  np.eye(4) if ok else None, 1.0, stages, similarity=0.9)

    monkeypatch.setattr(stored_image, "register", fake)
    volume = SimpleNamespace(affine=np.diag([*spacing, 1.0]))
    image = np.random.default_rng(3).poisson(2000.0, size=(24, 32)).astype(np.float32)
    camera = Camera.from_geometry(32, 24, 1000.0, 1.0, 1.0)
    return stored_image.register_stored(volume, None, image, "MONOCHROME2", camera)


def test_a_coarse_ct_pose_carries_the_caution(monkeypatch):
    res = _register(monkeypatch, (3.0, 3.0, 3.0), "ok")
    assert res.status == "ok" and res.message.startswith("registered in training-free mode; ")
    assert "depth along the beam may be off" in res.message
    assert res.stages["quality"]["coarse_ct"] is True


def test_a_fine_ct_pose_and_a_refusal_get_none(monkeypatch):
    fine = _register(monkeypatch, (0.8, 0.8, 1.0), "ok")
    assert fine.message == "registered in training-free mode"
    assert "coarse_ct" not in fine.stages["quality"]
    refused = _register(monkeypatch, (3.0, 3.0, 3.0), "failed", check="similarity")
    assert refused.message == "refused"
    refused_fine = _register(monkeypatch, (0.8, 0.8, 1.0), "failed")
    assert refused_fine.message == "refused"


def test_an_undetermined_pose_on_a_coarse_ct_names_the_voxels(monkeypatch):
    """Refused because the view does not pin the pose down (the consistency checks, the
    depth-rival check among them): the message says the CT is the limit."""
    res = _register(monkeypatch, (1.0, 1.0, 3.0), "failed")
    assert res.status == "failed" and res.T_cam_from_world is None
    assert res.message.startswith("refused; the CT's voxels are up to 3.0 mm")
    assert "thin-slice CT" in res.message


def test_the_site_keeps_the_flag_with_its_quality_figures(monkeypatch):
    from webapp.xray_registration.services.running import _quality_figures

    res = _register(monkeypatch, (3.0, 3.0, 3.0), "ok")
    inputs = SimpleNamespace(model=None, device="cpu")
    quality = _quality_figures(res, res.to_json(), None, inputs)
    assert quality["coarse_ct"] is True
    fine = _register(monkeypatch, (0.8, 0.8, 1.0), "ok")
    assert "coarse_ct" not in _quality_figures(fine, fine.to_json(), None, inputs)
