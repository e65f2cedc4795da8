"""Automatic exposure control: the dose brings the central median photon count to the set
point for thin and thick patients alike, up to the tube's limit."""

from __future__ import annotations

import math

import numpy as np
import pytest

from registration.engine.xray_sim import aec_dose


def _body(thickness_line: float) -> np.ndarray:
    """(64, 64) line integrals: air at the border, a uniform body of ``thickness_line``."""
    line = np.zeros((64, 64))
    line[8:56, 8:56] = thickness_line
    return line


@pytest.mark.parametrize("thickness", [0.5, 3.0, 6.0])
def test_central_median_photons_reach_the_set_point(thickness):
    line = _body(thickness)
    dose = aec_dose(line, 1000.0, max_dose=1e9)
    central = line[16:48, 16:48]
    assert np.median(dose * np.exp(-central)) == pytest.approx(1000.0, rel=1e-9)
    assert dose == pytest.approx(1000.0 * math.exp(thickness), rel=1e-9)


def test_thick_patient_is_capped_at_the_tube_limit():
    assert aec_dose(_body(9.0), 1000.0, max_dose=2.5e5) == pytest.approx(2.5e5)


def test_only_the_exposed_field_is_metered():
    line = _body(2.0)
    line[:, 32:] = 6.0  # the right half is dense, but collimated away
    field = np.zeros_like(line, dtype=bool)
    field[:, :32] = True
    dose = aec_dose(line, 500.0, field=field, max_dose=1e9)
    assert dose == pytest.approx(500.0 * math.exp(2.0), rel=1e-9)


@pytest.mark.parametrize("kw", [{"target_photons": 0.0}, {"target_photons": 10.0, "max_dose": -1.0},
                                {"target_photons": 10.0, "central_fraction": 0.0}])
def test_bad_settings_are_refused(kw):
    target = kw.pop("target_photons")
    with pytest.raises(ValueError):
        aec_dose(_body(1.0), target, **kw)
