"""A stored X-ray whose polarity the noise got wrong is tried once more the other way when
the pose it gives matches poorly (the ``similarity`` check), not only when the network
finds no pose; when both polarities are refused, the closer match is reported."""

from __future__ import annotations

import numpy as np
import pytest

from geometry.camera import Camera
from registration.engine import stored_image
from registration.engine.pipeline import RegistrationResult

H, W = 24, 32


def _image() -> np.ndarray:
    rng = np.random.default_rng(7)
    image = rng.poisson(2000.0, size=(H, W)).astype(np.float32)
    image[:, W // 3 : 2 * W // 3] *= 0.4  # a darker (attenuating) band
    return image


def _result(status: str, similarity: float, check: str | None) -> RegistrationResult:
    stages = {"quality": {"failed_check": check}} if check else {"quality": {}}
    pose = np.eye(4) if status == "ok" else None
    return RegistrationResult(status, "" if status == "ok" else f"{check} refused", pose, 1.0,
                              stages, similarity=similarity)


@pytest.fixture
def scripted_register(monkeypatch):
    """``register`` answering from a script keyed by the attempt number."""
    calls: list[np.ndarray] = []

    def install(*answers: RegistrationResult) -> list[np.ndarray]:
        def fake(volume, model, li, valid, camera, **kwargs):
            calls.append(li.copy())
            return answers[len(calls) - 1]

        monkeypatch.setattr(stored_image, "register", fake)
        return calls

    return install


def _register() -> RegistrationResult:
    camera = Camera.from_geometry(W, H, 1000.0, 1.0, 1.0)
    return stored_image.register_stored(None, None, _image(), "MONOCHROME2", camera)


def test_a_poor_match_tries_the_other_polarity(scripted_register):
    calls = scripted_register(_result("failed", 0.40, "similarity"), _result("ok", 0.90, None))
    result = _register()
    assert result.status == "ok" and len(calls) == 2
    tried = result.stages["preprocess"]["polarities_tried"]
    assert sorted(tried) == ["bone_bright", "bone_dark"]
    assert result.stages["preprocess"]["polarity"] == tried[1]
    # the second line integral is the other polarity's, not a copy of the first
    assert np.corrcoef(calls[0].ravel(), calls[1].ravel())[0, 1] < 0


def test_both_refused_reports_the_closer_match(scripted_register):
    scripted_register(_result("failed", 0.55, "similarity"), _result("failed", 0.30, "similarity"))
    result = _register()
    assert result.status == "failed" and result.similarity == pytest.approx(0.55)
    assert result.seconds == pytest.approx(2.0)  # both tries counted


def test_a_consistency_refusal_is_not_retried(scripted_register):
    calls = scripted_register(_result("failed", 0.80, "consistency"))
    result = _register()
    assert result.status == "failed" and len(calls) == 1
