"""How far a registered pose is from the truth, for the in-distribution benchmark of
``bench_registration``: 3D mTRE and projected distance, where the error lies (depth,
sideways, rotation), and the self-check's outcome against the true error."""

from __future__ import annotations

import numpy as np

from geometry.camera import project
from geometry.rigid import rotation_angle_deg, target_error_mm


def pose_errors(T, tgt: np.ndarray, T_true: np.ndarray, icam) -> tuple[float | None, float | None]:
    """(3D mTRE in mm over the targets ``tgt`` (world, mm), mean projected distance at the
    detector in mm) of pose ``T`` against ``T_true``; (None, None) without a pose."""
    if T is None:
        return None, None
    e3 = float(target_error_mm(tgt, T, T_true).mean())
    pa, pb = project(tgt, icam.K, T), project(tgt, icam.K, T_true)
    sp = np.asarray(icam.pixel_spacing_mm)
    return e3, float(np.mean(np.linalg.norm((pa - pb) * sp, axis=1)))


def error_parts(T, T_true: np.ndarray, centre_world: np.ndarray) -> dict | None:
    """Where a pose's error lies, in the X-ray's camera frame: the bone-box centre's offset
    along the viewing ray through it (``depth_mm``, + away from the source) and across it
    (``sideways_mm``), and the rotation error (``rotation_deg``); None without a pose."""
    if T is None:
        return None
    T, T_true = np.asarray(T, np.float64), np.asarray(T_true, np.float64)
    c = np.asarray(centre_world, np.float64)
    # both poses map the world into the same (the X-ray's) camera frame
    p_true = T_true[:3, :3] @ c + T_true[:3, 3]
    p_est = T[:3, :3] @ c + T[:3, 3]
    ray = p_true / np.linalg.norm(p_true)
    d = p_est - p_true
    along = float(d @ ray)
    return {"depth_mm": round(along, 3),
            "sideways_mm": round(float(np.linalg.norm(d - along * ray)), 3),
            "rotation_deg": round(rotation_angle_deg(T[:3, :3], T_true[:3, :3]), 3)}


def confusion(rows: list[dict], limit_mm: float = 10.0) -> dict:
    """Self-check outcome against the true error: counts of ok/failed results whose pose
    (the reported one, or the rejected one for a failure) is under/over ``limit_mm`` mTRE;
    ``failed_no_pose`` counts failures before any pose was estimated."""
    out = {"ok_under": 0, "ok_over": 0, "failed_under": 0, "failed_over": 0, "failed_no_pose": 0}
    for r in rows:
        if r["status"] == "ok":
            out["ok_under" if r["mtre_mm"] <= limit_mm else "ok_over"] += 1
        elif r.get("mtre_of_rejected_mm") is None:
            out["failed_no_pose"] += 1
        else:
            out["failed_under" if r["mtre_of_rejected_mm"] <= limit_mm else "failed_over"] += 1
    return out


def parts_median(per_image: list[dict]) -> dict:
    """Median absolute error parts (:func:`error_parts`) of the network + PnP poses and of
    the refined ones, over the images that have them."""
    out = {}
    for key in ("pnp_error_parts", "error_parts"):
        rows = [p[key] for p in per_image if p.get(key)]
        if rows:
            out[key] = {
                k: round(float(np.median([abs(r[k]) for r in rows])), 3)
                for k in ("depth_mm", "sideways_mm", "rotation_deg")}
    return out
