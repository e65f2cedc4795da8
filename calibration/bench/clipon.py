"""The clip-on phantom family of ``bench_calibration``: image-intensifier frames of the
shipped two-layer phantom (random source, random distortion 5-10 mm at the edge), each
calibrated with a hold-out set and judged against the simulation's ground truth, then
again with 30 % of the beads hidden and with anatomy over the phantom."""

from __future__ import annotations

import time
from collections.abc import Callable

import cv2
import numpy as np

from calibration.bench.opencv_reference import opencv_holdout
from calibration.engine.calibrate import CalibrationError, calibrate
from calibration.engine.phantom import Phantom
from simulation.phantom_frames import IIDistortion, SimGeometry, simulate_phantom_image


def robust_ok(sim, phantom: Phantom, spacing: float) -> bool:
    """Calibration succeeds, names every used bead correctly and finds the source within 5 mm."""
    try:
        res = calibrate(sim.image, phantom, (spacing, spacing))
    except CalibrationError:
        return False
    for b in res.profile["beads"]:
        if b["used"]:
            t = sim.true_px.get(b["id"])
            if t is None or np.linalg.norm(np.array(b["detected_px"]) - t) > 1.5:
                return False
    s = np.array(res.profile["source_mm"])
    s_true = np.array(sim.geometry.source_mm)
    if sim.rotation_deg % 360 == 0:
        return bool(np.linalg.norm(s - s_true) < 5.0)
    return True


def _detection_rms_px(res, sim) -> float | None:
    """Image-only bead detection error (RMS px): raw detections, before the added noise,
    against the true bead centres they lie within 1 px of."""
    raw = res.detections.xy
    truth_px = np.array(list(sim.true_px.values()))
    dd = np.linalg.norm(raw[None, :, :] - truth_px[:, None, :], axis=2)
    nearest = dd.min(axis=1)
    d_err = (raw[dd.argmin(axis=1)] - truth_px)[nearest < 1.0]
    return float(np.sqrt(np.mean(np.sum((d_err) ** 2, axis=1)))) if len(d_err) else None


def _accuracy_row(case: int, res, sim, src, phantom: Phantom, size: int, spacing: float,
                  log: Callable[[str], object]) -> dict:  # fmt: skip
    """The accuracy columns of one calibrated case (mm unless named otherwise)."""
    beads = res.profile["beads"]
    ho = [b for b in beads if b["held_out"] and b["id"] in sim.true_dewarped_px]
    det = np.array([b["detected_px"] for b in ho])
    truth = np.array([sim.true_dewarped_px[b["id"]] for b in ho])
    err_mm = np.linalg.norm(res.dewarp_points(det) - truth, axis=1) * spacing
    self_mm = np.array([b["residual_px"] for b in ho]) * spacing
    s_est = np.array(res.profile["source_mm"])
    s_true = np.array(src)
    fit_ids = [b["id"] for b in beads if b["used"] and b["plane"] == 0]
    try:
        cv_rms, cv_max = opencv_holdout(
            res, phantom, fit_ids, [b["id"] for b in ho], size, size, spacing
        )
    except cv2.error as exc:
        log(f"case {case}: OpenCV calibration failed: {exc}")
        cv_rms, cv_max = None, None
    return {
        "case": case,
        "holdout_rms_mm": float(np.sqrt(np.mean(err_mm**2))),
        "holdout_max_mm": float(np.max(err_mm)),
        "engine_selfconsistent_rms_mm": float(np.sqrt(np.mean(self_mm**2))),
        "opencv_holdout_rms_mm": cv_rms,
        "opencv_holdout_max_mm": cv_max,
        "source_lateral_mm": float(np.linalg.norm(s_est[:2] - s_true[:2])),
        "source_axial_mm": float(abs(s_est[2] - s_true[2])),
    }


def clipon_case(case: int, seed: int, phantom: Phantom, size: int, noise_px: float,
                anatomy: np.ndarray, log: Callable[[str], object]) -> dict:  # fmt: skip
    """One case: ``{"case", "row", "sim", "res"}`` when the clean frame calibrates, else
    ``{"case", "error"}``. ``row`` holds the accuracy, the time (s), the model and whether
    the hidden-bead and anatomy frames calibrated; its line goes to ``log``."""
    spacing = 0.25 * 1024 / size
    near_ids = [b.id for b in phantom.beads if b.plane == 0]
    rng = np.random.default_rng(seed)
    src = (rng.uniform(-10, 10), rng.uniform(-10, 10), -rng.uniform(950, 1050))
    geo = SimGeometry(size, size, (spacing, spacing), src)
    dist = IIDistortion.random(rng)
    sim = simulate_phantom_image(phantom, geo, dist, rng=rng, noise=0.01)
    holdout = list(rng.choice(near_ids, size=len(near_ids) // 5, replace=False))
    t0 = time.perf_counter()
    c0 = time.process_time()
    try:
        res = calibrate(
            sim.image, phantom, (spacing, spacing), holdout_ids=holdout,
            position_noise_px=noise_px, rng=rng,
        )  # fmt: skip
    except CalibrationError as exc:
        log(f"case {case}: clean calibration FAILED: {exc}")
        return {"case": case, "error": str(exc)}
    t_cal = time.perf_counter() - t0
    cpu_cal = time.process_time() - c0
    row = _accuracy_row(case, res, sim, src, phantom, size, spacing, log)
    row.update({
        "calibration_s": t_cal,
        "calibration_cpu_s": cpu_cal,
        "order": res.profile["forward"]["order"],
        "beads_used": res.profile["beads_used"],
        "far_used": res.profile["beads_far_used"],
        "detection_rms_px": _detection_rms_px(res, sim),
    })  # fmt: skip
    # robustness: 30 % hidden + spurious blobs; anatomy over the phantom
    sim_h = simulate_phantom_image(
        phantom, geo, dist, rng=rng, hide_fraction=0.3, n_spurious=25,
        rotation_deg=float(rng.choice([0, 90, 180, 270])), flip=bool(rng.random() < 0.3),
    )  # fmt: skip
    row["hidden_ok"] = robust_ok(sim_h, phantom, spacing)
    sim_a = simulate_phantom_image(
        phantom, geo, dist, rng=rng, anatomy=anatomy, hide_fraction=0.1
    )
    row["anatomy_ok"] = robust_ok(sim_a, phantom, spacing)
    log(_case_line(row))
    return {"case": case, "row": row, "sim": sim, "res": res}


def _case_line(row: dict) -> str:
    cv_rms = row["opencv_holdout_rms_mm"]
    return (
        f"case {row['case']:2d}: hold-out RMS {row['holdout_rms_mm']:.3f} mm, max "
        f"{row['holdout_max_mm']:.3f} mm, OpenCV RMS "
        f"{(cv_rms if cv_rms is not None else float('nan')):.3f} mm, source lat "
        f"{row['source_lateral_mm']:.2f} ax {row['source_axial_mm']:.2f} mm, "
        f"{row['calibration_s']:.2f} s, hidden {'ok' if row['hidden_ok'] else 'FAIL'}, "
        f"anatomy {'ok' if row['anatomy_ok'] else 'FAIL'}"
    )
