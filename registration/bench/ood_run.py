"""Registering benchmark shots through the product's own path, as ``register_xray`` does:
image file -> ``dicomio.read_xray`` -> camera.json (``stored_image.camera_for_stored_image``)
-> ``xray_input.line_integral_from_pixels`` (with register_xray's one retry in the opposite
polarity when the network finds no pose) -> ``pipeline.register``.

Modes (how the registration starts):
* ``model``: the trained network; a DICOM shot with C-arm angles also gets the site's header
  start (``carm_pose`` of the header angles and source distance, aimed at the bone centre),
  as ``webapp.xray_registration.services.header_initial_pose`` gives it.
* ``init_3_5`` / ``init_8_20``: no network, ``--init`` at the true pose perturbed by exactly
  3 deg / 5 mm or 8 deg / 20 mm (about the bone centre, a seeded direction per shot).
* ``training_free``: no network and no start but the header's (when the shot has angles);
  needs a pipeline with a training-free mode.
"""

from __future__ import annotations

import json
import math
import time

import numpy as np

INIT_MODES = {"init_3_5": (3.0, 5.0), "init_8_20": (8.0, 20.0)}
MODES = ("model", *INIT_MODES, "training_free")


class ModeUnavailable(RuntimeError):
    """The pipeline under test cannot run this mode (one-line reason)."""


def mtre_mm(T, targets: np.ndarray, T_true: np.ndarray) -> float | None:
    """Mean 3-D distance (mm) between ``targets`` (N, 3 LPS mm) mapped by ``T`` and by
    ``T_true`` (both ``T_cam_from_world``); None without a pose."""
    if T is None:
        return None
    T, T_true = np.asarray(T, np.float64), np.asarray(T_true, np.float64)
    a = targets @ T[:3, :3].T + T[:3, 3]
    b = targets @ T_true[:3, :3].T + T_true[:3, 3]
    return float(np.linalg.norm(a - b, axis=1).mean())


def header_start(xray, centre_lps: np.ndarray) -> np.ndarray | None:
    """The site's start from a header with C-arm angles and source-to-patient distance."""
    from geometry.carm import carm_pose

    g = xray.geometry
    if g.get("primary_angle_deg") is None or g.get("secondary_angle_deg") is None:
        return None
    if not g.get("source_to_patient_mm"):
        return None
    return carm_pose(float(g["primary_angle_deg"]), float(g["secondary_angle_deg"]),
                     float(g["source_to_patient_mm"]), centre_lps)


def register_shot(volume, model, shot, mode: str, *, centre_lps: np.ndarray, seed: int,
                  renderer, device: str = "cpu") -> dict:
    """One shot in one mode; returns its row (status, mTRE of the returned pose and of a
    rejected one, seconds per stage, which start won, polarity used)."""
    from dicomio import read_xray
    from geometry.camera import Camera
    from geometry.rigid import perturb_pose
    from registration.engine.pipeline import RegistrationOptions
    from registration.engine.stored_image import camera_for_stored_image, register_stored

    t0 = time.perf_counter()
    xray = read_xray(shot.path)
    camera = camera_for_stored_image(Camera.from_json(json.loads(shot.camera_path.read_text())), xray)
    t_read = time.perf_counter() - t0
    T_true = shot.geometry.T_true
    use_model = model if mode == "model" else None
    T_init = None
    start = None
    if mode in INIT_MODES:
        deg, mm = INIT_MODES[mode]
        rng = np.random.default_rng([seed, 3571, shot.index, int(deg), int(mm)])
        T_init = perturb_pose(T_true, deg, mm, rng, center_world=centre_lps)
        start = f"true pose + {deg:g} deg / {mm:g} mm"
    else:
        T_init = header_start(xray, centre_lps)
        start = "header angles" if T_init is not None else None
    options = RegistrationOptions(device=device)
    res = register_stored(
        volume, use_model, xray.pixels, xray.photometric, camera, bits_stored=xray.bits_stored,
        T_init=T_init, initial_kind="init" if mode in INIT_MODES else "header",
        options=options, renderer=renderer,
    )
    stages = {k: float(v.get("seconds", 0.0)) for k, v in res.stages.items()
              if isinstance(v, dict) and "seconds" in v}
    stages["read"] = t_read
    stages["total"] = t_read + float(res.seconds)
    rejected = res.extras.get("T_rejected") if res.T_cam_from_world is None else None
    sim = res.similarity
    return {
        "index": shot.index, "file": shot.path.name, "kind": shot.kind,
        "family": shot.geometry.family, "header_angles": shot.header_angles,
        "format": shot.file_format, "display": shot.params.display, "mode": mode,
        "status": res.status, "message": res.message,
        "mtre_mm": mtre_mm(res.T_cam_from_world, shot.targets, T_true),
        "mtre_of_rejected_mm": mtre_mm(rejected, shot.targets, T_true),
        "mtre_start_mm": mtre_mm(T_init, shot.targets, T_true),
        "given_start": start,
        "start_won": (res.stages.get("start", {}).get("winner")
                      or res.stages.get("hypotheses", {}).get("start")),
        "polarity": res.stages.get("preprocess", {}).get("polarity"),
        "display_form_read": res.stages.get("preprocess", {}).get("display_form"),
        "similarity": sim if isinstance(sim, float) and math.isfinite(sim) else None,
        "seconds": stages,
        # the consistency self-checks' figures, to study and recalibrate their thresholds
        "restarts": _figures(res.stages.get("restarts")),
        "depth_rivals": _figures(res.stages.get("depth_rivals")),
        "scatter": _figures(res.stages.get("scatter")),
    }


def _figures(stage: dict | None) -> dict | None:
    return None if stage is None else {k: v for k, v in stage.items() if k != "seconds"}
