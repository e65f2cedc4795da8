"""read_xray: stored pixel values, header geometry ([row, col] -> [sx, sy]), PNG, refusals."""

from __future__ import annotations

import struct
import zlib

import cv2
import numpy as np
import pytest

from dicomio import InputRefused, read_xray, zero_preamble
from tests.conftest import shared_path
from tests.dicomio.synth import xray_dataset


def _save(ds, path):
    ds.save_as(path, enforce_file_format=True)
    return path


def test_dicom_xa_pixels_and_geometry(tmp_path):
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 4096, size=(12, 16)).astype(np.uint16)
    path = _save(xray_dataset(pixels, imager_spacing=(0.2, 0.3)), tmp_path / "xa.dcm")
    xr = read_xray(path)
    assert xr.pixels.dtype == np.float32 and xr.pixels.shape == (12, 16)
    np.testing.assert_array_equal(xr.pixels, pixels.astype(np.float32))
    g = xr.geometry
    assert g["pixel_spacing_mm"] == pytest.approx([0.3, 0.2])  # [sx, sy] from [row, col]
    assert g["pixel_spacing_source"] == "ImagerPixelSpacing"
    assert g["source_to_detector_mm"] == pytest.approx(1000.0)
    assert g["source_to_patient_mm"] == pytest.approx(700.0)
    assert g["primary_angle_deg"] == pytest.approx(10.0)
    assert g["secondary_angle_deg"] == pytest.approx(-5.0)
    assert (g["width"], g["height"]) == (16, 12)
    assert xr.photometric == "MONOCHROME2" and xr.bits_stored == 12 and xr.modality == "XA"


def test_pixel_spacing_fallback_and_monochrome1_kept(tmp_path):
    pixels = np.arange(20, dtype=np.uint16).reshape(4, 5) * 100
    ds = xray_dataset(pixels, modality="DX", photometric="MONOCHROME1", imager_spacing=None)
    ds.PixelSpacing = ["0.15", "0.25"]
    xr = read_xray(_save(ds, tmp_path / "dx.dcm"))
    assert xr.geometry["pixel_spacing_mm"] == pytest.approx([0.25, 0.15])
    assert xr.geometry["pixel_spacing_source"] == "PixelSpacing"
    assert xr.photometric == "MONOCHROME1"
    np.testing.assert_array_equal(xr.pixels, pixels.astype(np.float32))


def test_multiframe_uses_first_frame_and_says_so(tmp_path):
    frames = np.stack([np.full((6, 7), v, np.uint16) for v in (11, 22, 33)])
    xr = read_xray(_save(xray_dataset(frames, frames=3), tmp_path / "cine.dcm"))
    np.testing.assert_array_equal(xr.pixels, np.full((6, 7), 11, np.float32))
    assert xr.n_frames == 3 and "first of 3 frames" in xr.notes[0]


@pytest.mark.parametrize("name", ["RG1_J2KI.dcm", "RG3_J2KI.dcm", "RG3_J2KR.dcm"])
def test_real_cr_radiographs_read(name):
    import pydicom

    path = shared_path("dicom", "pydicom_data", name)
    xr = read_xray(path)
    ds = pydicom.dcmread(path)
    assert xr.modality == "CR" and xr.photometric == "MONOCHROME1"
    assert xr.pixels.shape == (int(ds.Rows), int(ds.Columns))
    assert xr.pixels.max() < 2 ** int(ds.BitsStored) and xr.pixels.std() > 10
    # PixelSpacing [0, 0] (RG1) or absent (RG3) is "unknown", never 0
    assert xr.geometry["pixel_spacing_mm"] is None


def test_lossless_and_lossy_cr_agree():
    lossless = read_xray(shared_path("dicom", "pydicom_data", "RG3_J2KR.dcm")).pixels
    lossy = read_xray(shared_path("dicom", "pydicom_data", "RG3_J2KI.dcm")).pixels
    assert np.abs(lossless - lossy).mean() < 0.02 * lossless.max()


@pytest.mark.parametrize(
    "rel, expected",
    [
        (("assorted_pydicom", "MR_small.dcm"), "not an X-ray image (modality MR"),
        (("assorted_pydicom", "CT_small.dcm"), "not an X-ray image (modality CT"),
        (("assorted_pydicom", "README.txt"), "is not a DICOM or PNG file"),
    ],
)
def test_non_xray_inputs_are_refused(rel, expected):
    with pytest.raises(InputRefused) as err:
        read_xray(shared_path("dicom", *rel))
    assert expected in err.value.message


def test_png_16_and_8_bit(tmp_path):
    rng = np.random.default_rng(1)
    img16 = rng.integers(0, 65535, size=(9, 13)).astype(np.uint16)
    cv2.imwrite(str(tmp_path / "a.png"), img16)
    xr = read_xray(tmp_path / "a.png")
    np.testing.assert_array_equal(xr.pixels, img16.astype(np.float32))
    assert xr.file_format == "png" and xr.bits_stored == 16
    assert xr.geometry["pixel_spacing_mm"] is None
    img8 = rng.integers(0, 255, size=(5, 4)).astype(np.uint8)
    cv2.imwrite(str(tmp_path / "b.png"), img8)
    np.testing.assert_array_equal(read_xray(tmp_path / "b.png").pixels, img8)


def test_colour_png_is_refused(tmp_path):
    img = np.zeros((4, 4, 3), np.uint8)
    img[..., 2] = 255
    cv2.imwrite(str(tmp_path / "c.png"), img)
    with pytest.raises(InputRefused, match="colour PNG"):
        read_xray(tmp_path / "c.png")


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def test_png_with_huge_declared_size_is_refused_before_decoding(tmp_path):
    ihdr = struct.pack(">IIBBBBB", 200_000, 200_000, 16, 0, 0, 0, 0)
    png = b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(b"\0" * 10))
    (tmp_path / "bomb.png").write_bytes(png + _chunk(b"IEND", b""))
    with pytest.raises(InputRefused, match="declares 200000 x 200000 pixels"):
        read_xray(tmp_path / "bomb.png")


def test_zero_preamble():
    data = b"MZ" + b"\x90" * 126 + b"DICM" + b"rest"
    out = zero_preamble(data)
    assert out[:128] == b"\0" * 128 and out[128:] == data[128:]
    assert zero_preamble(b"not dicom") == b"not dicom"


def test_reorientation_flags_and_bytes_input(tmp_path):
    pixels = np.arange(12, dtype=np.uint16).reshape(3, 4)
    path = _save(xray_dataset(pixels, imager_spacing=(0.2, 0.3)), tmp_path / "r.dcm")
    raw = path.read_bytes()
    np.testing.assert_array_equal(read_xray(raw).pixels, pixels)
    flipped = read_xray(raw, flip_horizontal=True)
    np.testing.assert_array_equal(flipped.pixels, pixels[:, ::-1])
    rotated = read_xray(raw, flip_vertical=True, rotate_deg=90)
    # flip rows, then rotate 90 degrees clockwise: new[r, c] = flipped[H-1-c, r]
    expected = np.rot90(pixels[::-1, :], k=-1)
    np.testing.assert_array_equal(rotated.pixels, expected)
    assert rotated.pixels[0, 0] == pixels[0, 0] and rotated.pixels.shape == (4, 3)
    assert (rotated.geometry["width"], rotated.geometry["height"]) == (3, 4)
    assert rotated.geometry["pixel_spacing_mm"] == pytest.approx([0.2, 0.3])
