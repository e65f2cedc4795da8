"""Self-check figures: a pose whose projected CT bone misses the bone the network sees is rejected."""

from __future__ import annotations

import numpy as np
import pytest

from registration.engine.pipeline_checks import mask_dice
from registration.engine.quality import (
    QualityError,
    QualityThresholds,
    check_mask_agreement,
    check_network,
    check_pnp,
    check_pose,
    check_restarts,
)


def test_mask_dice_and_agreement_check():
    prob = np.zeros((64, 64), np.float32)
    prob[16:48, 16:48] = 0.9
    same = np.zeros((32, 32), bool)
    same[8:24, 8:24] = True
    valid = np.ones((32, 32), bool)
    assert mask_dice(prob, same, valid) == pytest.approx(1.0)
    shifted = np.zeros((32, 32), bool)
    shifted[20:32, 20:32] = True
    d = mask_dice(prob, shifted, valid)
    assert d < 0.2
    check_mask_agreement(0.8)
    with pytest.raises(QualityError, match="does not overlap"):
        check_mask_agreement(d)
    with pytest.raises(QualityError, match="Dice 0.50 < 0.60"):
        check_mask_agreement(0.5)  # half the bone in the wrong place (a wrong close-up)


def test_other_checks_name_the_problem():
    with pytest.raises(QualityError, match="no bone of this CT"):
        check_network(0.001, 5.0)
    with pytest.raises(QualityError, match="too uncertain"):
        check_network(0.3, 500.0)
    with pytest.raises(QualityError, match="inliers"):
        check_pnp(400, 10)
    T = np.eye(4)
    T[2, 3] = 5.0  # bone centre 5 mm in front of the source
    with pytest.raises(QualityError, match="implausible pose"):
        check_pose(T, np.zeros(3), 1000.0)
    T[2, 3] = 650.0
    check_pose(T, np.zeros(3), 1000.0)


def test_restart_check_rejects_undetermined_pose():
    check_restarts([1.0, 9.0], [0.95, 0.96], 0.95)
    with pytest.raises(QualityError, match="not well determined") as exc:
        check_restarts([1.0, 12.0], [0.95, 0.95], 0.95)  # far and as good
    assert exc.value.stage == "consistency"
    with pytest.raises(QualityError, match="12.0 mm"):
        check_restarts([12.0], [0.97], 0.95)  # far and better
    with pytest.raises(QualityError):
        check_restarts([float("nan")], [0.5], 0.95)


def test_restart_check_accepts_a_far_restart_that_matches_clearly_worse():
    th = QualityThresholds()
    worse = 0.95 - th.restart_similarity_margin - 1e-3
    check_restarts([1.0, 20.0], [0.95, worse], 0.95, th)
    barely = 0.95 - th.restart_similarity_margin + 1e-3
    with pytest.raises(QualityError):
        check_restarts([1.0, 20.0], [0.95, barely], 0.95, th)
    with pytest.raises(QualityError):  # no reference to compare with: be strict
        check_restarts([20.0], [0.1], float("nan"), th)
    with pytest.raises(ValueError):
        check_restarts([1.0, 2.0], [0.9], 0.9, th)


def test_a_poorer_far_restart_excuses_only_a_pose_that_matches_well():
    th = QualityThresholds()
    worse = 0.95 - th.restart_similarity_margin - 1e-2
    good = th.poorer_rival_min_similarity + 1e-3
    poor = th.poorer_rival_min_similarity - 1e-3
    check_restarts([1.0, 20.0], [0.95, worse], 0.95, th, pose_similarity=good)
    with pytest.raises(QualityError, match=r"matches the X-ray only 0\.85 \(< 0\.85\)") as exc:
        check_restarts([1.0, 20.0], [0.95, worse], 0.95, th, pose_similarity=poor)
    assert exc.value.stage == "consistency"
    assert "20.0 mm" in str(exc.value)
    with pytest.raises(QualityError):  # a similarity that was never computed is not good
        check_restarts([1.0, 20.0], [0.95, worse], 0.95, th, pose_similarity=float("nan"))
    # restarts that come back close need no excuse, however poor the match
    check_restarts([1.0, 9.0], [0.95, worse], 0.95, th, pose_similarity=0.6)
