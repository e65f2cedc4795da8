"""Compressed transfer syntaxes decode to the same HU as the uncompressed slice, or are
refused naming the transfer syntax."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest

from dicomio import InputRefused, load_ct
from dicomio.ct import check_pixel_header, decode_frames
from tests.conftest import SHARED_DATA, shared_path

TS_DIR = SHARED_DATA / "dicom" / "transfer_syntaxes"
LOSSLESS = ["1.2.840.10008.1.2.2", "1.2.840.10008.1.2.1.99", "1.2.840.10008.1.2.4.90",
            "1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.70", "1.2.840.10008.1.2.4.57",
            "1.2.840.10008.1.2.1", "1.2.840.10008.1.2", "1.2.840.10008.1.2.5"]  # fmt: skip
# Lossy: max |HU error|. Baseline JPEG (4.50) holds 8-bit values with RescaleSlope 32, so
# one quantisation step alone is 32 HU.
LOSSY = {
    "1.2.840.10008.1.2.4.91": 10.0,
    "1.2.840.10008.1.2.4.81": 5.0,
    "1.2.840.10008.1.2.4.51": 40.0,
    "1.2.840.10008.1.2.4.50": 70.0,
}
UNDECODABLE = ["1.2.840.10008.1.2.4.55", "1.2.840.10008.1.2.4.53"]


def _hu(path) -> np.ndarray:
    ds = pydicom.dcmread(path)
    check_pixel_header(ds, path.name, max_voxels=10**8)
    raw = decode_frames(ds, path.name)[0].astype(np.float64)
    return raw * float(ds.RescaleSlope) + float(ds.RescaleIntercept)


def _file(uid: str):
    matches = sorted(TS_DIR.glob(f"CTImage.dcm_*_{uid}.dcm"))
    if not matches:
        pytest.skip(f"no file for {uid}")
    return matches[0]


@pytest.fixture(scope="module")
def reference():
    return _hu(shared_path("dicom", "transfer_syntaxes", "CTImage.dcm"))


@pytest.mark.parametrize("uid", LOSSLESS)
def test_lossless_syntaxes_decode_to_identical_hu(uid, reference):
    np.testing.assert_array_equal(_hu(_file(uid)), reference)


@pytest.mark.parametrize("uid, tol", sorted(LOSSY.items()))
def test_lossy_syntaxes_decode_close_to_reference(uid, tol, reference):
    hu = _hu(_file(uid))
    assert np.abs(hu - reference).max() <= tol


@pytest.mark.parametrize("uid", UNDECODABLE)
def test_undecodable_syntax_is_refused_by_name(uid):
    path = _file(uid)
    with pytest.raises(InputRefused) as err:
        load_ct(path)
    assert uid in err.value.message and "cannot be decoded" in err.value.message
    name = pydicom.uid.UID(uid).name
    assert name in err.value.message


def test_corrupt_codestream_is_refused_not_crashing():
    path = shared_path("dicom", "pydicom_data", "emri_small_jpeg_2k_lossless_too_short.dcm")
    with pytest.raises(InputRefused):
        load_ct(path)
