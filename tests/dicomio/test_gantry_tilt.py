"""Gantry tilt is resampled onto an orthogonal grid (never a sheared affine)."""

from __future__ import annotations

import numpy as np
import pytest

from dicomio import load_ct
from tests.conftest import shared_path
from tests.dicomio.synth import write_series


def _field(xyz: np.ndarray) -> np.ndarray:
    """A linear HU field in LPS mm: linear interpolation reproduces it exactly."""
    return 3.0 * xyz[..., 0] - 2.0 * xyz[..., 1] + 5.0 * xyz[..., 2] + 100.0


def test_tilted_series_is_resampled_to_the_true_field(tmp_path):
    rows, cols, n = 24, 20, 7
    sy, sx, gap = 1.0, 1.0, 2.0
    drift_per_slice = 1.0  # mm along the column direction (+y) per slice: tilt atan(1/2)
    positions = np.array([[-10.0, -12.0 + k * drift_per_slice, 5.0 + k * gap] for k in range(n)])
    jj, ii = np.mgrid[0:rows, 0:cols]
    stored = np.empty((n, rows, cols), np.int16)
    for k in range(n):
        xyz = positions[k] + np.stack([ii * sx, jj * sy, np.zeros_like(ii)], -1)
        stored[k] = np.rint(_field(xyz) + 1024).astype(np.int16)
    write_series(tmp_path / "tilt", stored, positions, spacing=(sy, sx))

    vol = load_ct(tmp_path / "tilt")
    expected_tilt = np.degrees(np.arctan2(drift_per_slice, gap))
    assert vol.metadata["gantry_tilt_deg"] == pytest.approx(expected_tilt, abs=0.01)
    assert any("gantry tilt" in note for note in vol.metadata["resampling"])
    # the affine is orthogonal (no shear) with the slice axis along the slice normal
    cols_ = vol.affine[:3, :3]
    gram = cols_.T @ cols_
    np.testing.assert_allclose(gram - np.diag(np.diag(gram)), 0.0, atol=1e-9)
    np.testing.assert_allclose(vol.affine[:3, 2], [0, 0, gap], atol=1e-9)
    # every voxel whose source lies inside its original slice carries the true field value
    kk, jj3, ii3 = np.mgrid[0:n, 0:rows, 0:cols]
    ijk = np.stack([ii3, jj3, kk], -1).reshape(-1, 3).astype(float)
    world = vol.voxel_to_world(ijk).reshape(n, rows, cols, 3)
    src_row = (world[..., 1] - positions[kk, 1]) / sy
    inside = (src_row >= 0) & (src_row <= rows - 1)
    assert inside.mean() > 0.7
    np.testing.assert_allclose(vol.array[inside], _field(world)[inside], atol=0.51)
    assert np.all(
        vol.array[~inside & (np.abs(src_row - np.clip(src_row, 0, rows - 1)) >= 1)] == -1024
    )


def test_real_tilt_without_tilt_tag_is_resampled():
    folder = shared_path("dicom", "malformed", "gantrytilting")
    vol = load_ct(folder)
    assert vol.metadata["gantry_tilt_deg"] > 5
    cols_ = vol.affine[:3, :3]
    gram = cols_.T @ cols_
    np.testing.assert_allclose(gram - np.diag(np.diag(gram)), 0.0, atol=1e-6)


def test_real_tilt_resampling_matches_each_slice_own_geometry():
    """Each output slice equals its source slice sampled through the source's own IPP."""
    import pydicom
    from scipy import ndimage

    folder = shared_path("dicom", "malformed", "gantrytilting")
    vol = load_ct(folder)
    slices = [pydicom.dcmread(p) for p in sorted((folder / "001").iterdir())]
    normal = np.cross(
        np.array(slices[0].ImageOrientationPatient[:3], float),
        np.array(slices[0].ImageOrientationPatient[3:], float),
    )
    slices.sort(key=lambda ds: float(np.dot(np.array(ds.ImagePositionPatient, float), normal)))
    k_, j_, i_ = vol.shape
    jj, ii = np.mgrid[0:j_, 0:i_]
    for k, ds in enumerate(slices):
        row = np.array(ds.ImageOrientationPatient[:3], float)
        col = np.array(ds.ImageOrientationPatient[3:], float)
        sy, sx = (float(v) for v in ds.PixelSpacing)
        ijk = np.stack([ii.ravel(), jj.ravel(), np.full(ii.size, k)], -1).astype(float)
        rel = vol.voxel_to_world(ijk) - np.array(ds.ImagePositionPatient, float)
        assert np.abs(rel @ normal).max() < 0.05  # the output slice lies in the source plane
        src = np.stack([(rel @ col) / sy, (rel @ row) / sx])
        hu = ds.pixel_array.astype(np.float64) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
        expected = ndimage.map_coordinates(hu, src, order=1, mode="constant", cval=np.nan)
        ok = np.isfinite(expected)
        assert ok.mean() > 0.8
        np.testing.assert_allclose(vol.array[k].ravel()[ok], expected[ok], atol=0.01)
