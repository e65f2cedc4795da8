"""load_ct geometry against an independent reader (SimpleITK) and against synthetic truth.

Tolerances: affine / origin / spacing / direction to 1e-3 mm, HU values equal.
"""

from __future__ import annotations

import numpy as np
import pytest

from dicomio import load_ct
from tests.conftest import shared_path
from tests.dicomio.synth import write_series

sitk = pytest.importorskip("SimpleITK")


def _sitk_series(folder):
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
    return reader.Execute()


def _assert_same_geometry(vol, img, *, values=True):
    direction = np.array(img.GetDirection()).reshape(3, 3)
    spacing = np.array(img.GetSpacing())
    np.testing.assert_allclose(vol.spacing, spacing, atol=1e-3)
    np.testing.assert_allclose(vol.origin, np.array(img.GetOrigin()), atol=1e-3)
    np.testing.assert_allclose(vol.direction, direction, atol=1e-6)
    np.testing.assert_allclose(vol.affine[:3, :3], direction * spacing, atol=1e-3)
    if values:
        np.testing.assert_array_equal(vol.array, sitk.GetArrayFromImage(img).astype(np.float32))


@pytest.mark.parametrize("name", ["ct_series_spine_philips", "ct_series_abdomen_j2k"])
def test_real_series_match_simpleitk(name):
    folder = shared_path("dicom", name)
    vol = load_ct(folder)
    _assert_same_geometry(vol, _sitk_series(folder))
    assert vol.metadata["resampling"] == []


def test_nifti_matches_simpleitk_lps():
    path = shared_path("ct", "abdomen_pelvis_totalseg_sm.nii.gz")
    vol = load_ct(path)
    _assert_same_geometry(vol, sitk.ReadImage(str(path)))


def test_oblique_shuffled_synthetic_series(tmp_path):
    rng = np.random.default_rng(7)
    angle = np.deg2rad(25.0)
    row = np.array([np.cos(angle), np.sin(angle), 0.0])
    col = np.array([0.0, 0.0, -1.0])
    normal = np.cross(row, col)
    n = 6
    stored = rng.integers(0, 3000, size=(n, 9, 11)).astype(np.int16)
    origin = np.array([12.5, -40.0, 80.0])
    positions = np.array([origin + k * 1.25 * normal for k in range(n)])
    write_series(
        tmp_path / "obl",
        stored,
        positions,
        orientation=(*row, *col),
        spacing=(0.6, 0.7),
        shuffle_seed=3,
        slope=2.0,
        intercept=-1000.0,
    )
    vol = load_ct(tmp_path / "obl")
    np.testing.assert_allclose(vol.affine[:3, 0], row * 0.7, atol=1e-6)
    np.testing.assert_allclose(vol.affine[:3, 1], col * 0.6, atol=1e-6)
    np.testing.assert_allclose(vol.affine[:3, 2], normal * 1.25, atol=1e-6)
    np.testing.assert_allclose(vol.origin, origin, atol=1e-5)
    np.testing.assert_array_equal(vol.array, stored.astype(np.float32) * 2 - 1000)
    _assert_same_geometry(vol, _sitk_series(tmp_path / "obl"))


def test_reversed_position_order_is_sorted_along_normal(tmp_path):
    rng = np.random.default_rng(11)
    stored = rng.integers(0, 100, size=(4, 5, 6)).astype(np.int16)
    positions = np.array([[0.0, 0.0, -3.0 * k] for k in range(4)])  # descending z
    write_series(tmp_path / "rev", stored, positions, shuffle_seed=None)
    vol = load_ct(tmp_path / "rev")
    assert vol.affine[2, 2] == pytest.approx(3.0)
    assert vol.origin[2] == pytest.approx(-9.0)
    np.testing.assert_array_equal(vol.array, stored[::-1].astype(np.float32) - 1024)
