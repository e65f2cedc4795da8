"""Effective source, intrinsics K and the dewarped-residual accuracy of a full calibration."""

import numpy as np
import pytest

from calibration.engine.calibrate import calibrate
from calibration.engine.detector import project_to_detector
from calibration.engine.phantom import builtin_phantom
from calibration.engine.source import estimate_source, nearest_point_to_rays
from geometry.camera import Camera
from simulation.phantom_frames import IIDistortion, SimGeometry, simulate_phantom_image

SP = 0.5


def test_nearest_point_to_rays_exact():
    s = np.array([3.0, -7.0, -950.0])
    pts = np.array([[10.0, 0, 0], [-40, 30, 0], [60, -20, 0], [0, 80, 0]])
    np.testing.assert_allclose(nearest_point_to_rays(pts, s - pts), s, atol=1e-9)


def test_estimate_source_from_noisy_rays_and_covariance():
    rng = np.random.default_rng(5)
    far = np.column_stack([rng.uniform(-90, 90, (40, 2)), np.full(40, -80.0)])
    s = np.array([-6.0, 4.0, -1010.0])
    det = project_to_detector(far, s) + rng.normal(scale=0.02, size=(40, 2))
    det[0] += 3.0  # an outlier
    est = estimate_source(far, det)
    assert not est.inliers[0]
    assert np.linalg.norm(est.source_mm[:2] - s[:2]) < 0.3
    assert abs(est.source_mm[2] - s[2]) < 3.0
    assert 0 < est.lateral_sd_mm < 0.3 and est.lateral_sd_mm < est.axial_sd_mm < 3.0


def test_intrinsics_follow_conventions():
    k = Camera.from_source([5.0, -2.5, -1000.0], 512, 400, (0.5, 0.25)).K
    np.testing.assert_allclose(
        k, [[2000.0, 0, 255.5 + 10.0], [0, 4000.0, 199.5 - 10.0], [0, 0, 1]], atol=1e-12
    )


@pytest.fixture(scope="module")
def calibrated():
    p = builtin_phantom("clipon_two_layer")
    geo = SimGeometry(512, 512, (SP, SP), (7.0, -5.0, -985.0))
    sim = simulate_phantom_image(p, geo, IIDistortion.random(np.random.default_rng(21)), rng=21)
    holdout = [i for i in p.ids if i.startswith("N")][::5]
    return sim, calibrate(sim.image, p, (SP, SP), holdout_ids=holdout)


def test_source_recovery(calibrated):
    sim, res = calibrated
    s_true = np.array(sim.geometry.source_mm)
    s = np.array(res.profile["source_mm"])
    assert np.linalg.norm(s[:2] - s_true[:2]) < 0.5
    assert abs(s[2] - s_true[2]) < 5.0
    unc = res.profile["source_uncertainty_mm"]
    assert 0 < unc["lateral"] < 0.5 and 0 < unc["axial"] < 5
    k = np.array(res.profile["K"])
    np.testing.assert_allclose(k, Camera.from_source(s, 512, 512, (SP, SP)).K, atol=1e-9)
    assert np.linalg.norm(k[:2, 2] - sim.geometry.K[:2, 2]) < 1.0


def test_holdout_residual_after_dewarping(calibrated):
    sim, res = calibrated
    held = [b for b in res.profile["beads"] if b["held_out"]]
    assert len(held) > 30
    det = np.array([b["detected_px"] for b in held])
    truth = np.array([sim.true_dewarped_px[b["id"]] for b in held])
    err_mm = np.linalg.norm(res.dewarp_points(det) - truth, axis=1) * SP
    assert np.sqrt(np.mean(err_mm**2)) < 0.10
    assert np.max(err_mm) < 0.25
    assert res.profile["residuals_mm"]["rms"] < 0.10
    assert res.profile["forward"]["order"] in (3, 4, 5)


def test_profile_fields(calibrated):
    _, res = calibrated
    p = res.profile
    for key in ("K", "source_mm", "width", "height", "pixel_spacing_mm", "forward", "inverse",
                "residuals_px", "residuals_mm", "beads_used", "flip_horizontal"):  # fmt: skip
        assert key in p
    assert set(p["forward"]) == {"order", "center", "scale", "coeffs_x", "coeffs_y"}
    assert set(p["residuals_mm"]) == {"rms", "max", "per_bead"}
    assert p["beads_used"] == sum(1 for b in p["beads"] if b["used"] and b["plane"] == 0)
