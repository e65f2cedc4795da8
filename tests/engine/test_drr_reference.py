"""DRR against the independent nanodrr renderer on the shared CTs (NCC >= 0.99)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from geometry.camera import Camera
from geometry.carm import carm_pose
from registration.engine.drr import DrrRenderer
from tests.conftest import shared_path
from tests.engine.helpers import load_nifti_lps, load_pelvis, volume_center

pytest.importorskip("nanodrr.drr", reason="nanodrr (test-only reference renderer) not installed")

from registration.engine.reference_drr import NanoDrrReference  # noqa: E402

POSES = [(0.0, 0.0, 0.0), (30.0, 10.0, 5.0), (-45.0, -15.0, -20.0), (90.0, 0.0, 0.0)]


def _ncc(a: np.ndarray, b: np.ndarray) -> float:
    a = a.ravel() - a.mean()
    b = b.ravel() - b.mean()
    return float((a @ b) / np.sqrt((a @ a) * (b @ b)))


def _compare(vol, cam, offset=(0.0, 0.0, 0.0), method="planes", plane_sampling="slices"):
    ours = DrrRenderer(vol, method=method, plane_sampling=plane_sampling)
    ref = NanoDrrReference(ours.mu_volume, vol.affine)
    iso = volume_center(vol) + np.asarray(offset)
    for lao, cra, ip in POSES:
        T = carm_pose(lao, cra, 600.0, iso, in_plane_deg=ip)
        a = ours.render(torch.as_tensor(T), torch.as_tensor(cam.K), cam.height, cam.width)
        b = ref.render(T, cam.K, cam.height, cam.width, source_to_detector_mm=1000.0)
        a, b = a[0].numpy(), b[0].numpy()
        assert a.max() > 0.5, "the DRR must see the patient"
        assert _ncc(a, b) >= 0.99, (lao, cra, _ncc(a, b))
        # same physical units: mean line integral agrees within 2 %
        assert a.mean() == pytest.approx(b.mean(), rel=0.02)


@pytest.mark.parametrize(
    "method, plane_sampling", [("planes", "slices"), ("planes", "exact"), ("rays", "slices")]
)
def test_abdomen_ct_matches_nanodrr(method, plane_sampling):
    vol = load_nifti_lps(shared_path("ct", "abdomen_pelvis_totalseg.nii.gz"))
    cam = Camera.from_geometry(96, 80, 1000.0, 3.0, 3.0)
    _compare(vol, cam, method=method, plane_sampling=plane_sampling)


@pytest.mark.slow
def test_pelvis_fracture_ct_matches_nanodrr():
    vol = load_pelvis(shared_path("ct", "pelvis_bone_001"))
    # 1 mm voxels: subsample to keep the test light (the geometry is what is tested)
    arr = vol.array[::2, ::2, ::2]
    aff = vol.affine.copy()
    aff[:3, :3] *= 2.0
    from dicomio.volume import CTVolume

    _compare(
        CTVolume(np.ascontiguousarray(arr), aff), Camera.from_geometry(80, 80, 1000.0, 3.0, 3.0)
    )
