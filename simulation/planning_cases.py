"""Simulated two-view planning cases for the accuracy benchmark (no Django).

A case: a known CT box (LPS mm), two C-arm poses from ``carm_pose`` with a chosen
separation, entry/target points inside the box, picks = exact projections plus Gaussian
pick noise (pixels). Errors are 3D distances in CT mm between triangulated and true
points. The tool part sends a known tool pose through an optical-tracking chain with
optional tracking noise and measures the projected tip/extension error at the detector
(pixels) against the exact projection.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from geometry.camera import Camera
from geometry.carm import carm_pose
from geometry.rigid import compose
from planning.engine.errors import PlanningRefused
from planning.engine.trajectory import tool_projection
from planning.engine.transforms import (
    random_rigid,
    rotation_about,
    tool_pose_from_payload,
)
from planning.engine.views_geometry import ViewGeometry, project, triangulate


@dataclass(frozen=True)
class Setup:
    """Detector and C-arm geometry of the simulation (mm, pixels)."""

    width: int = 1024
    height: int = 1024
    pixel_mm: float = 0.3
    sdd_mm: float = 1000.0
    sid_mm: float = 600.0
    ct_centre: tuple[float, float, float] = (0.0, 150.0, -600.0)  # a scanner-like LPS origin
    ct_half_size: tuple[float, float, float] = (100.0, 100.0, 125.0)

    def camera(self) -> Camera:
        return Camera.from_geometry(
            self.width, self.height, self.sdd_mm, self.pixel_mm, self.pixel_mm
        )


def _views(
    setup: Setup, rng: np.random.Generator, separation_deg: float
) -> tuple[ViewGeometry, ViewGeometry]:
    cam = setup.camera()
    iso = np.asarray(setup.ct_centre) + rng.uniform(-20, 20, size=3)
    lao1 = rng.uniform(-15, 15)
    cran = rng.uniform(-10, 10)
    T1 = carm_pose(lao1, cran, setup.sid_mm, iso)
    T2 = carm_pose(lao1 + separation_deg, rng.uniform(-10, 10), setup.sid_mm, iso)

    def mk(T):
        return ViewGeometry(cam.K, T, cam.width, cam.height, pixel_spacing_mm=cam.pixel_spacing_mm)

    return mk(T1), mk(T2)


def _in_image(view: ViewGeometry, uv: np.ndarray) -> bool:
    return bool(np.all(uv >= 0) and uv[0] <= view.width - 1 and uv[1] <= view.height - 1)


def setup_from_ct(
    volume_hu: np.ndarray,
    affine: np.ndarray,
    threshold_hu: float = 250.0,
    max_points: int = 20000,
    seed: int = 0,
) -> tuple[Setup, np.ndarray]:
    """A setup centred on a real CT (``(k, j, i)`` HU, ``affine`` voxel -> LPS mm) and up
    to ``max_points`` bone voxel centres (LPS mm, HU > ``threshold_hu``) to plan between."""
    vol = np.asarray(volume_hu)
    shape_ijk = np.array(vol.shape[::-1], dtype=np.float64)
    corners = np.array([[i, j, k] for i in (0, 1) for j in (0, 1) for k in (0, 1)]) * (
        shape_ijk - 1
    )
    lps = corners @ affine[:3, :3].T + affine[:3, 3]
    centre = lps.mean(axis=0)
    half = (lps.max(axis=0) - lps.min(axis=0)) / 2
    kji = np.argwhere(vol > threshold_hu)
    if len(kji) < 2:
        raise PlanningRefused(f"the CT has no bone above {threshold_hu:g} HU to plan on")
    rng = np.random.default_rng(seed)
    if len(kji) > max_points:
        kji = kji[rng.choice(len(kji), max_points, replace=False)]
    bone = kji[:, ::-1].astype(np.float64) @ affine[:3, :3].T + affine[:3, 3]
    setup = Setup(
        ct_centre=tuple(float(x) for x in centre), ct_half_size=tuple(float(x) for x in half)
    )
    return setup, bone


def triangulation_errors(
    setup: Setup,
    separation_deg: float,
    n_cases: int,
    noise_px: float,
    seed: int,
    bone_points: np.ndarray | None = None,
) -> dict:
    """Errors (CT mm) of entry and target points triangulated from noisy picks. With
    ``bone_points`` (N, 3) LPS mm, entry and target are bone voxels of a real CT (target
    preferably 30-60 mm from the entry); else random points in the central CT box."""
    rng = np.random.default_rng(seed)
    errors, gaps, seps = [], [], []
    half = np.asarray(setup.ct_half_size) * 0.6  # points inside the central part of the CT
    while len(errors) < 2 * n_cases:
        v1, v2 = _views(setup, rng, separation_deg)
        if bone_points is not None:
            entry = bone_points[rng.integers(len(bone_points))]
            dist = np.linalg.norm(bone_points - entry, axis=1)
            near = np.flatnonzero((dist >= 30) & (dist <= 60))
            target = (
                bone_points[rng.choice(near)]
                if len(near)
                else bone_points[rng.integers(len(bone_points))]
            )
        else:
            entry = np.asarray(setup.ct_centre) + rng.uniform(-half, half)
            d = rng.normal(size=3)
            target = entry + rng.uniform(30, 60) * d / np.linalg.norm(d)
        for X in (entry, target):
            uv1, uv2 = project(v1, X)[0], project(v2, X)[0]
            if not (_in_image(v1, uv1) and _in_image(v2, uv2)):
                continue
            p, gap = triangulate(
                v1,
                uv1 + rng.normal(scale=noise_px, size=2),
                v2,
                uv2 + rng.normal(scale=noise_px, size=2),
            )
            errors.append(float(np.linalg.norm(p - X)))
            gaps.append(gap)
        seps.append(float(np.degrees(np.arccos(abs(v1.view_direction @ v2.view_direction)))))
    e = np.array(errors)
    return {
        "separation_deg": separation_deg,
        "measured_separation_deg_mean": float(np.mean(seps)),
        "n_points": int(e.size),
        "noise_px": noise_px,
        "error_mm": {
            "mean": float(e.mean()),
            "p95": float(np.percentile(e, 95)),
            "max": float(e.max()),
            "median": float(np.median(e)),
        },
        "ray_gap_mm_mean": float(np.mean(gaps)),
    }


def _noisy(T: np.ndarray, rng: np.random.Generator, trans_mm: float, rot_deg: float) -> np.ndarray:
    if trans_mm == 0 and rot_deg == 0:
        return T
    N = np.eye(4)
    N[:3, :3] = rotation_about(rng.normal(size=3), np.radians(rng.normal(scale=rot_deg)))
    N[:3, 3] = rng.normal(scale=trans_mm, size=3)
    return T @ N  # error of a tracked body's pose, in its own (marker) frame


def tool_projection_errors(
    setup: Setup,
    n_cases: int,
    seed: int,
    tracking_mm: float = 0.0,
    tracking_deg: float = 0.0,
    extension_mm: float = 100.0,
) -> dict:
    """Projected tool tip / extension-end error (px) at the detector, through the
    tracker chain ``T_tracker_from_tool``, ``T_tracker_from_patientref``,
    ``T_patientref_from_ct``, with optional Gaussian tracking noise on the two
    tracked poses (per axis, mm and degrees)."""
    rng = np.random.default_rng(seed)
    tip_err, ext_err, tip3d = [], [], []
    for _ in range(n_cases):
        v1, v2 = _views(setup, rng, 90.0)
        T_ct_from_tool = random_rigid(rng, 180, 1)
        T_ct_from_tool[:3, 3] = np.asarray(setup.ct_centre) + rng.uniform(-50, 50, size=3)
        T_tracker_from_ref = random_rigid(rng, 180, 1500)
        T_ref_from_ct = random_rigid(rng, 180, 150)
        T_tracker_from_tool = compose(T_tracker_from_ref, T_ref_from_ct, T_ct_from_tool)
        pose = tool_pose_from_payload(
            {
                "frame": "tracker",
                "T_tracker_from_tool": _noisy(
                    T_tracker_from_tool, rng, tracking_mm, tracking_deg
                ).tolist(),
                "T_tracker_from_patientref": _noisy(
                    T_tracker_from_ref, rng, tracking_mm, tracking_deg
                ).tolist(),
                "T_patientref_from_ct": T_ref_from_ct.tolist(),
            }
        )
        true_tip = T_ct_from_tool[:3, 3]
        true_axis = T_ct_from_tool[:3, 2]
        tip3d.append(float(np.linalg.norm(pose.tip - true_tip)))
        for v in (v1, v2):
            got = tool_projection(v, pose, extension_mm)
            want = project(v, np.stack([true_tip, true_tip + extension_mm * true_axis]))
            tip_err.append(float(np.linalg.norm(np.array(got["tip"]) - want[0])))
            ext_err.append(float(np.linalg.norm(np.array(got["extension"]) - want[1])))
    t, x = np.array(tip_err), np.array(ext_err)

    def stats(a):
        return {
            "mean": float(a.mean()),
            "p95": float(np.percentile(a, 95)),
            "max": float(a.max()),
        }

    return {
        "tracking_noise": {"mm": tracking_mm, "deg": tracking_deg},
        "n_projections": int(t.size),
        "tip_px": stats(t),
        "extension_end_px": stats(x),
        "tip_3d_mm": stats(np.array(tip3d)),
        "extension_mm": extension_mm,
    }
