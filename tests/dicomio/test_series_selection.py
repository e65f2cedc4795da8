"""Series grouping and selection, localizers, non-image objects, enhanced multi-frame CT."""

from __future__ import annotations

import numpy as np
import pytest
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from dicomio import InputRefused, MultipleSeriesFound, list_series, load_ct
from tests.dicomio.synth import ct_slice, write_series

ENHANCED_CT = "1.2.840.10008.5.1.4.1.1.2.1"


def _stack(n=4, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 1500, size=(n, 5, 6)).astype(np.int16), np.array(
        [[1.0, 2.0, 3.0 + 1.5 * k] for k in range(n)]
    )


def test_multiple_series_are_listed_and_selectable(tmp_path):
    s1, p1 = _stack(3, 0)
    s2, p2 = _stack(5, 1)
    write_series(tmp_path / "in", s1, p1, series_uid="1.2.826.0.1.1")
    write_series(tmp_path / "in" / "sub", s2, p2, series_uid="1.2.826.0.1.2")
    with pytest.raises(MultipleSeriesFound) as err:
        load_ct(tmp_path / "in")
    listed = {s["series_uid"]: s["n_slices"] for s in err.value.series}
    assert listed == {"1.2.826.0.1.1": 3, "1.2.826.0.1.2": 5}
    assert "1.2.826.0.1.1" in err.value.message and "choose one" in err.value.message
    assert {s["series_uid"] for s in list_series(tmp_path / "in")} == set(listed)
    vol = load_ct(tmp_path / "in", series_uid="1.2.826.0.1.2")
    np.testing.assert_array_equal(vol.array, s2.astype(np.float32) - 1024)
    with pytest.raises(InputRefused, match="series 9.9 is not in the input"):
        load_ct(tmp_path / "in", series_uid="9.9")


def test_non_image_objects_and_junk_files_are_skipped(tmp_path):
    stored, pos = _stack()
    write_series(tmp_path / "in", stored, pos)
    sr = ct_slice(np.zeros((2, 2), np.int16), position=(0, 0, 0), series_uid="1.2.9",
                  study_uid="1.2.8", modality="SR")  # fmt: skip
    for keyword in ("Rows", "Columns", "PixelData", "ImagePositionPatient"):
        delattr(sr, keyword)
    sr.save_as(tmp_path / "in" / "report.dcm", enforce_file_format=True)
    (tmp_path / "in" / "notes.txt").write_text("not dicom")
    vol = load_ct(tmp_path / "in")
    assert vol.shape == (4, 5, 6)
    assert any("notes.txt" in s for s in vol.metadata["skipped"])


def test_localizer_in_the_series_is_dropped(tmp_path):
    stored, pos = _stack()
    paths = write_series(tmp_path / "in", stored, pos, series_uid="1.2.826.0.7")
    scout = ct_slice(np.zeros((8, 8), np.int16), position=(0, 0, 0), orientation=(1, 0, 0, 0, 0, -1),
                     series_uid="1.2.826.0.7", study_uid="1.2.826.0.8")  # fmt: skip
    scout.ImageType = ["ORIGINAL", "PRIMARY", "LOCALIZER"]
    scout.save_as(tmp_path / "in" / "scout.dcm", enforce_file_format=True)
    vol = load_ct(tmp_path / "in")
    assert vol.shape == (4, 5, 6) and vol.metadata["localizers_dropped"] == 1
    assert len(paths) == 4


def test_mixed_sizes_are_refused(tmp_path):
    stored, pos = _stack()
    write_series(tmp_path / "in", stored, pos, series_uid="1.2.826.0.5")
    odd = ct_slice(np.zeros((7, 7), np.int16), position=(1, 2, 20), series_uid="1.2.826.0.5",
                   study_uid="1.2.826.0.6")  # fmt: skip
    odd.save_as(tmp_path / "in" / "odd.dcm", enforce_file_format=True)
    with pytest.raises(InputRefused, match="different sizes"):
        load_ct(tmp_path / "in")


def _enhanced_ct(path, frames: np.ndarray, positions, rescale_type="HU"):
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ENHANCED_CT
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = ENHANCED_CT
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.Modality = "CT"
    ds.NumberOfFrames = len(frames)
    ds.Rows, ds.Columns = frames.shape[1:]
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    shared = Dataset()
    orient, measures, transform = Dataset(), Dataset(), Dataset()
    orient.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    measures.PixelSpacing = [0.5, 0.75]
    measures.SliceThickness = 2
    transform.RescaleSlope, transform.RescaleIntercept = 1, -1000
    transform.RescaleType = rescale_type
    shared.PlaneOrientationSequence = Sequence([orient])
    shared.PixelMeasuresSequence = Sequence([measures])
    shared.PixelValueTransformationSequence = Sequence([transform])
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    per_frame = []
    for p in positions:
        item, plane = Dataset(), Dataset()
        plane.ImagePositionPatient = list(p)
        item.PlanePositionSequence = Sequence([plane])
        per_frame.append(item)
    ds.PerFrameFunctionalGroupsSequence = Sequence(per_frame)
    ds.PixelData = frames.astype("<i2").tobytes()
    ds.save_as(path, enforce_file_format=True)


def test_enhanced_multiframe_ct_uses_per_frame_positions(tmp_path):
    frames = np.random.default_rng(3).integers(0, 2000, size=(3, 4, 5)).astype(np.int16)
    positions = [(0.0, 0.0, 4.0), (0.0, 0.0, 0.0), (0.0, 0.0, 2.0)]  # out of order
    _enhanced_ct(tmp_path / "e.dcm", frames, positions)
    vol = load_ct(tmp_path / "e.dcm")
    np.testing.assert_array_equal(vol.array, frames[[1, 2, 0]].astype(np.float32) - 1000)
    np.testing.assert_allclose(vol.spacing, [0.75, 0.5, 2.0])


def test_enhanced_ct_with_non_hu_values_is_refused(tmp_path):
    frames = np.zeros((2, 4, 5), np.int16)
    _enhanced_ct(tmp_path / "e.dcm", frames, [(0, 0, 0), (0, 0, 1)], rescale_type="US")
    with pytest.raises(InputRefused, match=r"not Hounsfield units \(RescaleType US\)"):
        load_ct(tmp_path / "e.dcm")
