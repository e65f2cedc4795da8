"""Non-uniform spacing, missing slices and duplicate positions are refused by name."""

from __future__ import annotations

import numpy as np
import pytest

from dicomio import InputRefused, load_ct
from dicomio.geometry import plan_stack
from tests.conftest import shared_path

AXIAL = (1, 0, 0, 0, 1, 0)


def _positions(zs):
    return np.array([[5.0, -3.0, z] for z in zs])


def test_uniform_stack_plans_without_resampling():
    rng = np.random.default_rng(0)
    zs = np.arange(10) * 2.5 + 1.0
    order = rng.permutation(10)
    plan = plan_stack(_positions(zs[order]), AXIAL, (0.5, 0.7))
    np.testing.assert_array_equal(zs[order][plan.order], zs)
    assert plan.slice_spacing_mm == pytest.approx(2.5)
    assert not plan.needs_resampling
    np.testing.assert_allclose(plan.affine[:3, :3], np.diag([0.7, 0.5, 2.5]))


def test_missing_slice_is_named():
    zs = [0, 3, 6, 9, 12, 18, 21]
    with pytest.raises(InputRefused) as err:
        plan_stack(_positions(zs), AXIAL, (1, 1))
    msg = err.value.message
    assert msg.startswith("slice spacing varies from 3.00 to 6.00 mm between slices 5 and 6")
    assert "1 slice(s) seem to be missing" in msg


def test_uneven_gaps_are_named_in_sorted_order():
    zs = np.array([0.0, 1.1, 2.2, 3.3, 10.3, 11.4])
    shuffled = zs[[3, 0, 5, 1, 4, 2]]
    with pytest.raises(InputRefused) as err:
        plan_stack(_positions(shuffled), AXIAL, (1, 1))
    assert "varies from 1.10 to 7.00 mm between slices 4 and 5" in err.value.message


def test_duplicate_positions_are_refused():
    with pytest.raises(InputRefused) as err:
        plan_stack(_positions([0, 2, 2, 4]), AXIAL, (1, 1))
    assert "duplicate slice positions" in err.value.message
    assert "slices 2 and 3" in err.value.message


def test_small_jitter_within_tolerance_is_accepted():
    zs = np.arange(8) * 3.0 + np.array([0, 0.004, -0.003, 0.002, 0, 0.001, -0.002, 0])
    plan = plan_stack(_positions(zs), AXIAL, (1, 1))
    assert plan.slice_spacing_mm == pytest.approx(3.0, abs=1e-3)


def test_single_slice_is_refused():
    with pytest.raises(InputRefused, match="only 1 slice"):
        plan_stack(_positions([4.0]), AXIAL, (1, 1))


def test_irregular_sideways_drift_is_refused():
    pos = _positions(np.arange(6) * 2.0)
    pos[:, 0] += [0, 3, 0, 3, 0, 3]
    with pytest.raises(InputRefused, match="drift sideways irregularly"):
        plan_stack(pos, AXIAL, (1, 1))


def test_real_tilted_uneven_head_ct_names_spacing_and_tilt():
    with pytest.raises(InputRefused) as err:
        load_ct(shared_path("dicom", "ct_series_head_ge_tilted"))
    msg = err.value.message
    assert msg.startswith("slice spacing varies from 1.08 to 7.00 mm between slices")
    assert "gantry tilt of 18.5 degrees" in msg


@pytest.mark.parametrize(
    "sub, expected",
    [
        ("notavolume", "duplicate slice positions: 4 slices"),
        ("sliceincrement/001", "slice spacing varies from 5.00 to 10.00 mm between slices 3 and 4"),
        ("sliceincrement/002", "slice spacing varies from 0.75 to 1.50 mm between slices 3 and 4"),
    ],
)
def test_real_malformed_series(sub, expected):
    with pytest.raises(InputRefused) as err:
        load_ct(shared_path("dicom", "malformed", *sub.split("/")))
    assert expected in err.value.message
