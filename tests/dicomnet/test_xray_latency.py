"""An X-ray is stored 'at once': C-STORE round trip per shot, one association each (as a
C-arm sends), 20 shots of 512 x 512 x 16 bit."""

from __future__ import annotations

import time

import numpy as np
import pytest

from tests.dicomio.synth import xray_dataset
from tests.dicomnet.scu import store
from webapp.records.models import XrayImage

SHOTS = 20


@pytest.mark.slow
def test_xray_round_trip_is_well_under_a_second(node):
    rng = np.random.default_rng(0)
    seconds = []
    for _ in range(SHOTS):
        ds = xray_dataset(rng.integers(0, 4000, (512, 512)).astype(np.uint16))
        ds.PatientID = "LAT-1"
        ds.StationName = "OR2"
        started = time.perf_counter()
        assert store(node.port, [ds]) == [(0, "")]
        seconds.append(time.perf_counter() - started)
    assert XrayImage.objects.filter(patient__mrn="LAT-1").count() == SHOTS
    median, p95 = np.median(seconds), np.percentile(seconds, 95)
    print(f"\nC-STORE -> XrayImage, {SHOTS} shots 512x512: median {median * 1000:.0f} ms, "
          f"p95 {p95 * 1000:.0f} ms, first {seconds[0] * 1000:.0f} ms")
    assert median < 1.0
