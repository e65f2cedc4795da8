"""The OOD shot generator renders with nanodrr, not our DRR, and in our frames: a dense
bead of a tiny CT lands where our camera projects it."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from geometry.camera import project
from geometry.carm import carm_pose
from registration.bench.nanodrr_render import render_line_integral, subject_from_volume
from registration.bench.ood_poses import pose_from_carm, sample_geometry

GENERATOR = ("registration.bench.ood_shots", "registration.bench.nanodrr_render",
             "registration.bench.xray_chain", "registration.bench.ood_poses",
             "registration.bench.shot_io")
OURS = ("registration.engine.drr", "registration.engine.drr_volume", "registration.engine.drr_rays",
        "registration.engine.drr_planes", "registration.engine.xray_sim",
        "registration.engine.dataset", "geometry.carm", "geometry.camera", "simulation.heldout")


def test_generator_imports_none_of_our_renderer_or_simulator():
    code = ("import sys\n" + "".join(f"import {m}\n" for m in GENERATOR)
            + f"print(','.join(m for m in {OURS!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
    assert "nanodrr" in subprocess.run(
        [sys.executable, "-c", "import sys, registration.bench.nanodrr_render; "
         "print(' '.join(sys.modules))"], capture_output=True, text=True, check=True).stdout


def _bead_ct():
    arr = np.full((40, 40, 40), -1000.0, np.float32)
    k, j, i = 12, 25, 30
    arr[k - 1:k + 2, j - 1:j + 2, i - 1:i + 2] = 3000.0
    aff = np.array([[0.0, -2.0, 0.0, 30.0], [2.0, 0.0, 0.0, -50.0], [0.0, 0.0, 2.5, 90.0],
                    [0, 0, 0, 1]])  # rotated axes: the affine is honoured, not assumed diagonal
    return arr, aff, (aff @ np.array([i, j, k, 1.0]))[:3]


def _centroid(img: np.ndarray) -> np.ndarray:
    w = np.clip(img, 0, None)
    vv, uu = np.mgrid[: img.shape[0], : img.shape[1]]
    return np.array([(w * uu).sum() / w.sum(), (w * vv).sum() / w.sum()])


@pytest.mark.parametrize("family,close", [("ap", False), ("lateral", False), ("oblique", True)])
def test_bead_lands_where_our_camera_projects_it(family, close):
    arr, aff, bead = _bead_ct()
    rng = np.random.default_rng(5)
    g = sample_geometry(family, close, bead, rng)  # aimed at the bead, off-centre principal point
    # a smaller detector for speed: same K, fewer pixels around the bead's projection
    uv = project(bead[None], g.K, g.T_true)[0]
    K = g.K.copy()
    K[0, 2] -= round(uv[0]) - 24
    K[1, 2] -= round(uv[1]) - 20
    img = render_line_integral(subject_from_volume(arr, aff), K, 48, 40, g.T_true, g.sdd_mm,
                               n_samples=400)
    assert img.max() > 0.5
    np.testing.assert_allclose(_centroid(img), project(bead[None], K, g.T_true)[0], atol=0.05)


def test_carm_angles_mean_what_the_site_reads_from_a_header():
    for lao, cran, spin in [(0, 0, 0), (35, -20, 8), (-95, 28, -9)]:
        np.testing.assert_allclose(pose_from_carm(lao, cran, spin, 700, np.array([5.0, -3, 40])),
                                   carm_pose(lao, cran, 700, [5.0, -3, 40], in_plane_deg=spin),
                                   atol=1e-12)


def test_poses_are_wider_than_training_and_closeups_are_windows():
    rng = np.random.default_rng(0)
    lat = [sample_geometry("lateral", False, np.zeros(3), rng) for _ in range(30)]
    assert all(70 <= abs(g.lao_deg) <= 110 and abs(g.cranial_deg) <= 30 for g in lat)
    assert max(abs(g.cranial_deg) for g in lat) > 20
    close = [sample_geometry("ap", True, np.zeros(3), rng) for _ in range(30)]
    assert all(0.25 <= g.window["fraction"] <= 0.5 for g in close)
    for g in lat + close:
        assert 600 <= g.sid_mm <= 850 and 1000 <= g.sdd_mm <= 1100
        assert np.linalg.norm(g.isocentre_lps) <= 40 + 1e-9 and abs(g.spin_deg) <= 10
