"""NIfTI loading: RAS -> LPS, (i, j, k) -> (k, j, i) layout, header scaling, refusals."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from dicomio import InputRefused, load_ct


def _save(tmp_path, data, affine, name="v.nii.gz", slope_inter=None):
    img = nib.Nifti1Image(data, affine)
    if slope_inter is not None:
        img.header.set_slope_inter(*slope_inter)
    path = tmp_path / name
    nib.save(img, str(path))
    return path


def test_ras_point_maps_to_lps_and_layout(tmp_path):
    rng = np.random.default_rng(5)
    data = rng.integers(-1000, 2000, size=(4, 5, 6)).astype(np.int16)
    affine = np.array([[0.5, 0, 0, -3], [0, 0.6, 0, 7], [0, 0, 2.0, 11], [0, 0, 0, 1]])
    vol = load_ct(_save(tmp_path, data, affine))
    assert vol.shape == (6, 5, 4)
    for ijk in ([0, 0, 0], [3, 1, 5], [2, 4, 1]):
        ras = affine[:3, :3] @ ijk + affine[:3, 3]
        lps = vol.voxel_to_world(np.array([ijk], float))[0]
        np.testing.assert_allclose(lps, [-ras[0], -ras[1], ras[2]], atol=1e-9)
        i, j, k = ijk
        assert vol.array[k, j, i] == data[i, j, k]


def test_header_scaling_is_applied(tmp_path):
    data = np.arange(24, dtype=np.int16).reshape(2, 3, 4)
    vol = load_ct(_save(tmp_path, data, np.eye(4), "s.nii", slope_inter=(2.0, -1024.0)))
    np.testing.assert_array_equal(vol.array, (data * 2.0 - 1024).transpose(2, 1, 0))
    assert vol.array.dtype == np.float32


def test_singleton_4d_is_accepted(tmp_path):
    data = np.zeros((3, 4, 5, 1), np.int16)
    assert load_ct(_save(tmp_path, data, np.eye(4))).shape == (5, 4, 3)


@pytest.mark.parametrize(
    "shape, message",
    [((3, 4, 5, 2), "must be 3-D"), ((3, 4, 1), "only 1 slice")],
)
def test_bad_shapes_are_refused(tmp_path, shape, message):
    with pytest.raises(InputRefused, match=message):
        load_ct(_save(tmp_path, np.zeros(shape, np.int16), np.eye(4)))


def test_nan_and_corrupt_files_are_refused(tmp_path):
    data = np.zeros((3, 3, 3), np.float32)
    data[1, 1, 1] = np.nan
    with pytest.raises(InputRefused, match="NaN"):
        load_ct(_save(tmp_path, data, np.eye(4)))
    broken = tmp_path / "broken.nii.gz"
    noise = np.random.default_rng(0).integers(-1000, 1000, size=(16, 16, 16)).astype(np.int16)
    whole = _save(tmp_path, noise, np.eye(4)).read_bytes()
    assert len(whole) > 2000
    broken.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(InputRefused):
        load_ct(broken)


def test_voxel_limit_checked_from_header(tmp_path):
    path = _save(tmp_path, np.zeros((10, 10, 10), np.int16), np.eye(4))
    with pytest.raises(InputRefused, match="more than the limit of 999"):
        load_ct(path, max_voxels=999)


def test_nifti_in_a_one_item_list_and_refused_among_others(tmp_path):
    path = _save(tmp_path, np.zeros((3, 4, 5), np.int16), np.eye(4))
    assert load_ct([path]).shape == (5, 4, 3)
    with pytest.raises(InputRefused, match="must be imported on its own"):
        load_ct([path, path])
