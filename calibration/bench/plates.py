"""Dewarping-plate frames for ``bench_calibration``.

:func:`plate_case`: one realistic dewarping-plate frame (image intensifier: round or
  octagonal field with a soft edge, pincushion + S-distortion off centre, strong vignetting,
  a brightness gradient, glare, quantum noise, 12-bit values), calibrated, then dewarped;
  the dewarped image's markers are detected again and compared with a perfect lattice in
  the central 80 % of the field.
"""

from __future__ import annotations

import time

import numpy as np

from calibration.engine.calibrate import CalibrationError, calibrate
from calibration.engine.dewarp import dewarp_image
from calibration.engine.lattice import lattice_fit_rms
from calibration.engine.phantom import phantom_from_dict
from calibration.engine.plate_lattice import measure_lattice_deviation
from calibration.engine.plate_markers import PlateError
from simulation.phantom_frames import SimGeometry
from simulation.plate_frames import plate_distortion, simulate_plate_image

PLATE_GOAL_PX = 0.25


def plate_case(case: int, seed: int, size: int = 1024) -> dict:
    """One plate frame: lattice, marker, distortion strength and field shape vary with
    ``case``; plate pose at random. Returns a row of measurements (pixels, seconds)."""
    rng = np.random.default_rng(seed)
    lattice = ("square", "hex")[case % 2]
    marker = ("hole", "hole", "bead")[case % 3]
    strength = 3.0 if case % 4 == 3 else 1.0
    shape = "octagon" if case % 5 == 4 else "round"
    sp = 0.2  # 3 mm pitch ~ 15 px whatever the frame size
    pitch = 3.0 * float(rng.uniform(0.9, 1.1))
    diam = (0.4 if marker == "hole" else 0.33) * pitch
    plate = phantom_from_dict(
        {
            "name": f"bench plate {case}",
            "grid": {"lattice": lattice, "pitch_mm": round(pitch, 3), "marker": marker,
                     "diameter_mm": round(diam, 3)},
        }
    )  # fmt: skip
    g = SimGeometry(size, size, (sp, sp))
    fov_r = 0.478 * size
    dist = plate_distortion(rng, strength=strength, radius_mm=fov_r * sp)
    sim = simulate_plate_image(plate, g, dist, rng=rng, fov_shape=shape, fov_radius_px=fov_r)
    row = {
        "case": case,
        "lattice": lattice,
        "marker": marker,
        "field": shape,
        "distortion_strength": strength,
        "pitch_px": plate.grid.pitch_mm / sp,
        "markers_in_field": int(len(sim.ij)),
        "markers_cut_by_edge": int(len(sim.cut_px)),
    }
    c = np.array(sim.fov_centre_px)

    def central(xy_raw):
        return np.linalg.norm(np.asarray(xy_raw) - c, axis=1) <= 0.8 * sim.fov_radius_px

    basis = plate.grid.basis_mm / sp
    sel = central(sim.true_px)
    row["raw_true_rms_px"] = lattice_fit_rms(sim.ij[sel], sim.true_px[sel], basis)[0]
    try:
        row["raw_rms_px"] = measure_lattice_deviation(
            sim.image, plate.grid, (sp, sp), region=central
        )["rms_px"]
    except PlateError as exc:
        row["raw_rms_px"] = None
        row["raw_error"] = str(exc)
    t0, c0 = time.perf_counter(), time.process_time()
    try:
        res = calibrate(sim.image, plate, (sp, sp), sdd_mm=1000.0)
    except CalibrationError as exc:
        row["ok"] = False
        row["error"] = str(exc)
        return row
    row["calibration_s"] = time.perf_counter() - t0
    row["calibration_cpu_s"] = time.process_time() - c0
    row["ok"] = True
    row["order"] = res.profile["forward"]["order"]
    row["markers_used"] = res.profile["beads_used"]
    # markers used by the fit that the field edge cuts (by the simulator's conservative
    # rule), and how far their centroids are from the true centres
    det = np.array([b["detected_px"] for b in res.profile["beads"] if b["used"]])
    d_in = np.min(np.linalg.norm(det[:, None] - sim.true_px[None], axis=2), axis=1)
    d_cut = (
        np.min(np.linalg.norm(det[:, None] - sim.cut_px[None], axis=2), axis=1)
        if len(sim.cut_px)
        else np.full(len(det), np.inf)
    )
    at_edge = (d_cut < d_in) & (d_cut < 3.0)
    row["used_edge_markers"] = int(at_edge.sum())
    row["used_edge_max_error_px"] = float(d_cut[at_edge].max()) if at_edge.any() else 0.0
    row["used_not_a_marker"] = int(np.sum(np.minimum(d_in, d_cut) > 3.0))
    row["used_max_error_px"] = float(d_in[~at_edge].max())
    row["model_true_rms_px"] = lattice_fit_rms(
        sim.ij[sel], res.forward.apply(sim.true_px[sel]), basis
    )[0]
    out = dewarp_image(sim.image, res.profile)
    try:
        m = measure_lattice_deviation(
            out, plate.grid, (sp, sp), region=lambda xy: central(sim.inverse_gt(xy))
        )
        row["dewarped_rms_px"] = m["rms_px"]
        row["dewarped_max_px"] = m["max_px"]
        row["dewarped_markers"] = m["n_markers"]
    except PlateError as exc:
        row["dewarped_rms_px"] = None
        row["dewarped_error"] = str(exc)
    return row
