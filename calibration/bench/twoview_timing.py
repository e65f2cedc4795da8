"""The two measurements of ``bench_calibration`` made over calibrated cases rather than per
case: two-view triangulation through the calibrated models and the speed of a dewarp."""

from __future__ import annotations

import time

import numpy as np

from calibration.bench.anatomy import orbit_pose
from calibration.engine.dewarp import clear_cache, dewarp_image, dewarp_maps
from geometry.camera import Camera
from geometry.twoview import View, triangulate_midpoint


def triangulation_errors(good: list[dict], spacing: float, rng: np.random.Generator) -> list[float]:
    """3D errors (mm) of points triangulated from two views 90 deg apart (case k and case
    k+1 of ``good`` as the two calibrated C-arm angles), 1 px pick noise, 10 points each."""
    errors = []
    for k in range(len(good)):
        views_true, views_est, pairs = [], [], []
        for j, ang in ((k, 0.0), ((k + 1) % len(good), 90.0)):
            sim, res = good[j]["sim"], good[j]["res"]
            g = sim.geometry
            s_true = np.array(g.source_mm)
            sod = 0.6 * -s_true[2]
            t = orbit_pose(ang, sod)
            k_true = Camera.from_source(s_true, g.width, g.height, g.spacing).K
            views_true.append(View(k_true, t))
            views_est.append(View(np.array(res.profile["K"]), t))
            pairs.append((sim, res))
        pts = rng.uniform(-50, 50, size=(10, 3))
        for x in pts:
            picks = []
            for v_true, (sim, res) in zip(views_true, pairs, strict=True):
                ideal = v_true.project(x)
                distorted = sim.inverse_gt(ideal)
                dewarped = res.dewarp_points(distorted)[0]
                picks.append(dewarped + rng.normal(scale=1.0, size=2))
            tri = triangulate_midpoint(views_est[0], picks[0], views_est[1], picks[1])
            errors.append(float(np.linalg.norm(tri.point_world - x)))
    return errors


def dewarp_timing(profile: dict, size: int) -> tuple[list[float], list[float], float]:
    """Wall-clock and process-CPU milliseconds of 30 dewarps of a ``size``^2 image with the
    maps cached, and the seconds the map build took."""
    img = (np.random.default_rng(0).random((size, size)) * 60000).astype(np.uint16)
    clear_cache()
    t0 = time.perf_counter()
    dewarp_maps(profile, size, size)
    build = time.perf_counter() - t0
    times, cpu = [], []
    for _ in range(30):
        t0 = time.perf_counter()
        c0 = time.process_time()
        dewarp_image(img, profile)
        times.append((time.perf_counter() - t0) * 1000)
        cpu.append((time.process_time() - c0) * 1000)
    return times, cpu, build
