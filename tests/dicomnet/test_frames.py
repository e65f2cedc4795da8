"""Multi-frame X-rays split into single-frame data sets carrying their frame's geometry."""

from __future__ import annotations

import numpy as np
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import RLELossless

from tests.dicomio.synth import xray_dataset
from webapp.dicomnet.frames import single_frames
from webapp.dicomnet.status import StoreRefused


def _cine(frames: int = 4, seed: int = 0):
    """A cine whose per-frame (positioner, pixel spacing) and shared (distance) functional
    groups use the Enhanced XA macros' sequences."""
    pixels = np.random.default_rng(seed).integers(0, 4000, (frames, 12, 10)).astype(np.uint16)
    ds = xray_dataset(pixels, frames=frames, primary=None, secondary=None, sdd=None,
                      imager_spacing=None)
    items = []
    for k in range(frames):
        positioner = Dataset()
        positioner.PositionerPrimaryAngle = 10.0 * k
        positioner.PositionerSecondaryAngle = -2.0 * k
        item = Dataset()
        properties = Dataset()
        properties.ImagerPixelSpacing = [0.3, 0.3 + 0.01 * k]
        item.FramePixelDataPropertiesSequence = Sequence([properties])
        item.PositionerPositionSequence = Sequence([positioner])
        items.append(item)
    ds.PerFrameFunctionalGroupsSequence = Sequence(items)
    shared_item = Dataset()
    geometry = Dataset()
    geometry.DistanceSourceToDetector = 1100.0
    shared_item.XRayGeometrySequence = Sequence([geometry])
    ds.SharedFunctionalGroupsSequence = Sequence([shared_item])
    return ds, pixels


def test_last_frame_with_its_own_geometry():
    ds, pixels = _cine()
    [(number, frame)] = single_frames(ds, "last")
    assert number == 4 and int(frame.NumberOfFrames) == 1
    np.testing.assert_array_equal(frame.pixel_array, pixels[3])
    assert float(frame.PositionerPrimaryAngle) == pytest.approx(30.0)
    assert float(frame.PositionerSecondaryAngle) == pytest.approx(-6.0)
    assert float(frame.DistanceSourceToDetector) == pytest.approx(1100.0)
    assert [float(v) for v in frame.ImagerPixelSpacing] == pytest.approx([0.3, 0.33])
    assert frame.SOPInstanceUID == ds.SOPInstanceUID
    assert "PerFrameFunctionalGroupsSequence" not in frame


def test_all_frames_of_a_compressed_cine():
    ds, pixels = _cine(frames=3, seed=1)
    ds.compress(RLELossless)
    out = single_frames(ds, "all")
    assert [n for n, _ in out] == [1, 2, 3]
    for k, (_, frame) in enumerate(out):
        np.testing.assert_array_equal(frame.pixel_array, pixels[k])


def test_a_single_frame_instance_is_returned_as_it_is():
    ds = xray_dataset(np.zeros((8, 8), np.uint16))
    assert single_frames(ds, "last") == [(1, ds)]


def test_pixel_data_shorter_than_its_frames_is_refused():
    ds, _ = _cine()
    ds.PixelData = ds.PixelData[: len(ds.PixelData) // 2]
    with pytest.raises(StoreRefused, match="fewer than 4 frames"):
        single_frames(ds, "last")
