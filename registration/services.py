"""Registration site services: starting training and registration jobs, the worker-side
runs that call the engine, storing models and pictures in Django storage, reviews and
reviewer landmarks.

Thin by design: the science is in :mod:`registration.engine` (training.train_model,
pipeline.register, overlay, pose.target_error_mm). Files move between processes only
through Django storage (a model folder is uploaded file by file under a storage prefix
and downloaded to a temporary folder to be used); local paths never leave a function.

Frames and units: poses ``T_cam_from_world`` map CT LPS mm to camera mm; pixels are
``(u, v)`` = (column, row) of the dewarped image the registration used.
"""

from __future__ import annotations

import logging
import math
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone

from registration.models import LandmarkPair, Registration, RegistrationModel
from webapp.core import audit
from webapp.records.models import CTStudy, XrayImage
from webapp.xray_view import (
    XrayUnavailable,
    calibration_profile,
    camera_for_xray,
    dewarped_is_current,
    display_png,
    needs_dewarping,
    read_view,
)

log = logging.getLogger(__name__)

PRESETS = ("quick", "standard", "full")
MODEL_FILES = ("model.json", "weights.pt")
MODEL_PREFIX = "registration-models"
# Camera used to train when the patient has no calibrated or described C-arm image yet:
# a 1000 mm source-to-detector C-arm with a 30 cm field of view on 512 x 512 pixels.
DEFAULT_CAMERA = {"width": 512, "height": 512, "source_to_detector_mm": 1000.0, "spacing_mm": 0.6}
TRUE_ERROR_POINTS = 2000


class RegistrationRefused(ValueError):
    """A registration request or run was refused; the message (one line) says why."""


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:480]


def device_name() -> str:
    """``cuda`` when a GPU is available to this process, else ``cpu``."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


# --------------------------------------------------------------------------- cameras


def xray_camera(xray: XrayImage, width: int, height: int):
    """The camera of ``xray``'s viewed pixel grid ``width x height`` (one rule for every
    page and job: :func:`webapp.xray_view.camera_for_xray`). Raises
    :class:`RegistrationRefused` when it is unknown."""
    try:
        return camera_for_xray(xray, width=width, height=height).camera
    except XrayUnavailable as exc:
        raise RegistrationRefused(exc.message) from None


def training_camera(study: CTStudy):
    """The camera to train with: the patient's latest X-ray with a calibrated or described
    C-arm geometry, else :data:`DEFAULT_CAMERA`."""
    from registration.engine.camera import Camera

    for xray in study.patient.xrays.select_related("carm").order_by("-created_at"):
        try:
            return camera_for_xray(xray).camera
        except XrayUnavailable:
            continue
    d = DEFAULT_CAMERA
    return Camera.from_geometry(
        d["width"], d["height"], d["source_to_detector_mm"], d["spacing_mm"], d["spacing_mm"]
    )


# --------------------------------------------------------------------------- training


def latest_ready_model(study: CTStudy) -> RegistrationModel | None:
    return study.registration_models.filter(status=RegistrationModel.Status.READY).first()


def start_training(
    study: CTStudy, preset: str = "quick", *, user=None, request=None
) -> RegistrationModel:
    """Create a RegistrationModel (status training) for ``study`` and queue its training job
    (kind ``train_registration_model``, gpu queue). When a model of the same preset is
    already training for the study, that one is returned (no second job)."""
    from webapp.jobs.services import submit_job

    if preset not in PRESETS:
        raise RegistrationRefused(f"unknown preset {preset!r} (choose from {', '.join(PRESETS)})")
    if study.status != CTStudy.Status.READY or not study.volume_file:
        raise RegistrationRefused("the CT study is not ready (no stored volume)")
    running = study.registration_models.filter(
        status=RegistrationModel.Status.TRAINING, preset=preset
    ).first()
    if running is not None:
        return running
    with transaction.atomic():
        model = RegistrationModel.objects.create(study=study, preset=preset, created_by=user)
        model.storage_prefix = f"{MODEL_PREFIX}/study-{study.pk}/model-{model.pk}"
        job = submit_job(
            "train_registration_model",
            params={"model_id": model.pk, "preset": preset},
            user=user,
            patient=study.patient,
            request=request,
        )
        model.job = job
        model.save(update_fields=["storage_prefix", "job"])
        audit.record(
            request,
            "create",
            patient=study.patient,
            obj=model,
            detail=f"registration model ({preset}) training started",
            user=user,
        )
    return model


def _upload_model_dir(model: RegistrationModel, folder: Path) -> None:
    for name in MODEL_FILES:
        key = f"{model.storage_prefix}/{name}"
        if default_storage.exists(key):
            default_storage.delete(key)
        saved = default_storage.save(key, ContentFile((folder / name).read_bytes()))
        if saved != key:  # storage renamed it: keep the folder consistent
            default_storage.delete(saved)
            raise RegistrationRefused(f"could not store the model file {name} under {key}")


def download_model_dir(model: RegistrationModel, folder: Path) -> Path:
    """Copy a ready model's files from storage into ``folder`` (returned)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in MODEL_FILES:
        key = f"{model.storage_prefix}/{name}"
        if not default_storage.exists(key):
            raise RegistrationRefused(f"the model #{model.pk} file {name} is missing from storage")
        with default_storage.open(key, "rb") as src:
            (folder / name).write_bytes(src.read())
    return folder


def delete_model_files(model: RegistrationModel) -> None:
    for name in MODEL_FILES:
        key = f"{model.storage_prefix}/{name}"
        if model.storage_prefix and default_storage.exists(key):
            default_storage.delete(key)


def run_training(
    model: RegistrationModel, report: Callable[[float, str, dict | None], None]
) -> dict:
    """Train ``model`` (worker side) and store it. ``report(fraction, message, point)`` is
    called on progress (and may raise to cancel); ``point`` is a new loss-curve point
    ``{step, loss, loss_ema, median_error_mm, seconds}`` or None. Raises
    :class:`RegistrationRefused` for a CT that cannot be trained on (no bone)."""
    from registration.engine.dataset import NoBoneError
    from registration.engine.model_io import ct_fingerprint, save_model, versions
    from registration.engine.training import get_preset, train_model
    from webapp.records.volume_store import load_study_volume

    study = model.study
    device = device_name()
    preset = get_preset(model.preset)
    report(0.01, f"loading the CT ({preset.name} preset on {device})", None)
    volume = load_study_volume(study)
    camera = training_camera(study)
    model.training_curve = []
    model.save(update_fields=["training_curve"])

    def progress(info: dict) -> None:
        steps = max(int(info.get("steps") or 1), 1)
        if info.get("phase") == "simulating":
            frac = 0.1 * info.get("simulated", 0) / max(info.get("pool", 1), 1)
            report(
                frac, f"simulating training X-rays {info.get('simulated')}/{info.get('pool')}", None
            )
            return None
        point = {
            "step": int(info["step"]),
            "loss": round(float(info["loss"]), 5),
            "loss_ema": round(float(info.get("loss_ema") or info["loss"]), 5),
            "median_error_mm": round(float(info.get("median_error_mm") or 0.0), 3),
            "seconds": round(float(info.get("seconds") or 0.0), 2),
        }
        if not all(math.isfinite(v) for v in point.values()):
            point = {k: (v if math.isfinite(v) else None) for k, v in point.items()}
        model.training_curve = [*model.training_curve, point]
        RegistrationModel.objects.filter(pk=model.pk).update(training_curve=model.training_curve)
        frac = 0.1 + 0.85 * point["step"] / steps
        loss_text = f"{point['loss']:.3f}" if point["loss"] is not None else "not finite"
        report(frac, f"step {point['step']}/{steps}, loss {loss_text}", point)
        return None

    try:
        result = train_model(
            volume, camera, preset=preset, seed=0, device=device, progress=progress
        )
    except NoBoneError as exc:
        raise RegistrationRefused(_one_line(exc)) from None
    meta = result.meta
    meta["ct_fingerprint"] = ct_fingerprint(volume.array, volume.affine)
    meta["ct_shape"] = list(volume.shape)
    meta["versions"] = versions()
    meta["study_id"] = study.pk
    report(0.96, "storing the model", None)
    with tempfile.TemporaryDirectory() as tmp:
        folder = save_model(Path(tmp) / "model", result.net, meta)
        _upload_model_dir(model, folder)
    slim = {k: v for k, v in meta.items() if k != "training"}
    slim["training"] = {k: v for k, v in meta["training"].items() if k != "history"}
    model.model_json = slim
    model.status = RegistrationModel.Status.READY
    model.save(update_fields=["model_json", "status"])
    tr = slim["training"]
    return {
        "model_id": model.pk,
        "steps_done": tr.get("steps_done"),
        "seconds": tr.get("seconds"),
        "final_median_error_mm": tr.get("final_median_error_mm"),
        "device": device,
    }


# --------------------------------------------------------------------------- registration


def start_registration(xray: XrayImage, *, user=None, request=None) -> Registration:
    """Queue the registration of ``xray`` (kind ``register_xray``, gpu queue) to the latest
    ready model of one of its patient's CT studies. Raises :class:`RegistrationRefused`
    when the patient has no trained model."""
    from webapp.jobs.services import submit_job

    model = (
        RegistrationModel.objects.filter(
            study__patient=xray.patient, status=RegistrationModel.Status.READY
        )
        .select_related("study")
        .first()
    )
    if model is None:
        raise RegistrationRefused("no trained model for this patient's CT: prepare one first")
    with transaction.atomic():
        reg = Registration.objects.create(
            xray=xray, study=model.study, model=model, created_by=user
        )
        job = submit_job(
            "register_xray",
            params={"registration_id": reg.pk},
            user=user,
            patient=xray.patient,
            request=request,
        )
        reg.job = job
        reg.message = "waiting for a worker"
        reg.save(update_fields=["job", "message"])
        audit.record(
            request,
            "create",
            patient=xray.patient,
            obj=reg,
            detail=f"registration of X-ray {xray.pk} to CT {model.study_id} started",
            user=user,
        )
    return reg


@dataclass
class PreparedXray:
    pixels: np.ndarray  # (H, W) stored values as a viewer at the source sees them
    photometric: str
    bits_stored: int | None
    camera: object  # registration.engine.camera.Camera
    dewarped: bool


def prepare_xray(xray: XrayImage, *, dewarp: bool = True) -> PreparedXray:
    """The pixels that register and their camera (:mod:`webapp.xray_view`): an image
    intensifier's shot is dewarped first (again when its profile changed) unless
    ``dewarp`` is False, in which case a missing dewarped image is refused."""
    from calibration.services import CalibrationRefused, dewarp_xray

    if needs_dewarping(xray) and not dewarped_is_current(xray, calibration_profile(xray)):
        if not dewarp:
            raise RegistrationRefused("the dewarped image is missing")
        try:
            dewarp_xray(xray)
        except CalibrationRefused as exc:
            raise RegistrationRefused(
                "the X-ray comes from an image intensifier and must be dewarped first, but: "
                f"{_one_line(exc)}"
            ) from None
    try:
        view = read_view(xray)
    except XrayUnavailable as exc:
        raise RegistrationRefused(f"cannot read the X-ray: {exc.message}") from None
    camera = xray_camera(xray, view.pixels.shape[1], view.pixels.shape[0])
    return PreparedXray(
        pixels=view.pixels,
        photometric=view.photometric,
        bits_stored=view.bits_stored,
        camera=camera,
        dewarped=view.dewarped,
    )


def header_initial_pose(xray: XrayImage, model_meta: dict) -> np.ndarray | None:
    """A rough start from the header's C-arm angles and source-to-patient distance, aimed
    at the centre of the model's bone box; None when the header lacks them."""
    from registration.engine.pose import carm_pose

    if xray.primary_angle_deg is None or xray.secondary_angle_deg is None:
        return None
    sip = xray.distance_source_to_patient_mm
    if not sip or sip <= 0:
        return None
    centre = model_meta.get("normalisation", {}).get("centre_lps_mm")
    if not centre:
        return None
    return carm_pose(
        float(xray.primary_angle_deg), float(xray.secondary_angle_deg), float(sip), centre
    )


def true_target_error(volume, model_meta: dict, T_est: np.ndarray, T_true) -> dict:
    """mTRE (mm) of ``T_est`` against the ground truth over bone voxels of the CT (seeded
    subset), plus the 95th percentile and the maximum."""
    from registration.engine.dataset import bone_points
    from registration.engine.pose import target_error_mm

    threshold = float(model_meta.get("bone_threshold_hu", 200.0))
    points = bone_points(volume, threshold, max_points=TRUE_ERROR_POINTS, seed=0)
    if len(points) == 0:
        return {}
    err = target_error_mm(points, T_est, np.asarray(T_true, dtype=np.float64))
    return {
        "true_mtre_mm": round(float(err.mean()), 4),
        "true_tre_p95_mm": round(float(np.percentile(err, 95)), 4),
        "true_tre_max_mm": round(float(err.max()), 4),
        "true_error_points": int(len(points)),
    }


def render_pictures(
    volume, bone_threshold_hu: float, prepared: PreparedXray, T: np.ndarray, polarity: str
) -> tuple[bytes, bytes]:
    """(overlay PNG, DRR PNG) at pose ``T``: CT bone edges in green (full opacity; the page
    blends it over the X-ray) and the DRR shown like the X-ray (bone dark for a bone-dark
    image)."""
    import cv2

    from registration.engine.drr import DrrRenderer
    from registration.engine.overlay import bone_overlay_png, display_image

    renderer = DrrRenderer(volume, bone_threshold_hu=bone_threshold_hu)
    invert = prepared.photometric.upper() == "MONOCHROME1"
    overlay = bone_overlay_png(
        prepared.pixels,
        renderer,
        prepared.camera,
        T,
        opacity=1.0,
        samples_per_ray=128,
        invert=invert,
    )
    drr = renderer.render_numpy(prepared.camera, T, samples_per_ray=128)
    shown = display_image(drr, invert=(polarity == "bone_dark"))
    ok, buf = cv2.imencode(".png", shown)
    if not ok:
        raise RegistrationRefused("could not encode the DRR picture")
    return overlay, buf.tobytes()


def xray_display_png(pixels: np.ndarray, photometric: str) -> bytes:
    """The registered X-ray as an 8-bit PNG at its own size (the one display rule)."""
    try:
        return display_png(pixels, photometric)
    except XrayUnavailable as exc:
        raise RegistrationRefused(exc.message) from None


def run_registration(reg: Registration, report: Callable[[float, str], None]) -> dict:
    """Register ``reg.xray`` with ``reg.model`` (worker side) and store the pose, quality
    figures, stage timings, overlay and DRR. A run whose self-checks fail ends with status
    failed and the reason; bad inputs raise :class:`RegistrationRefused`."""
    import time

    from registration.engine.model_io import ModelError, ct_fingerprint, load_model
    from registration.engine.pipeline import RegistrationOptions, register
    from registration.engine.xray_input import line_integral_from_pixels, resolved_polarity
    from webapp.records.volume_store import load_study_volume

    t0 = time.perf_counter()
    model_row = reg.model
    if model_row is None or model_row.status != RegistrationModel.Status.READY:
        raise RegistrationRefused("no trained model for this patient's CT: prepare one first")
    report(0.05, "preparing the X-ray")
    t_prep = time.perf_counter()
    prepared = prepare_xray(reg.xray)
    prep_s = time.perf_counter() - t_prep
    report(0.2, "loading the model and the CT")
    device = device_name()
    t_load = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        folder = download_model_dir(model_row, Path(tmp) / "model")
        try:
            model = load_model(folder, device=device)
        except ModelError as exc:
            raise RegistrationRefused(_one_line(exc)) from None
    volume = load_study_volume(reg.study)
    fp = model.meta.get("ct_fingerprint")
    if fp and fp != ct_fingerprint(volume.array, volume.affine):
        raise RegistrationRefused("the model was trained on a different CT (fingerprint mismatch)")
    load_s = time.perf_counter() - t_load
    T_init = header_initial_pose(reg.xray, model.meta)
    options = RegistrationOptions(device=device)
    report(0.35, "registering")
    first = resolved_polarity(prepared.photometric)
    res = None
    used = first
    blank = float(np.ptp(prepared.pixels)) == 0.0
    # a stored polarity is a convention, not a fact: try the other one once when the
    # network finds no consistent pose (as the register_xray command does)
    for polarity in (first, "bone_bright" if first == "bone_dark" else "bone_dark"):
        if blank:
            li = np.zeros(prepared.pixels.shape, np.float32)
            valid = np.ones(prepared.pixels.shape, bool)
        else:
            li, valid = line_integral_from_pixels(
                prepared.pixels,
                prepared.photometric,
                bits_stored=prepared.bits_stored,
                polarity=polarity,
            )
        try:
            attempt = register(
                volume, model, li, valid, prepared.camera, T_init=T_init, options=options
            )
        except ValueError as exc:
            raise RegistrationRefused(f"cannot register the X-ray: {_one_line(exc)}") from None
        if res is not None:
            attempt.seconds += res.seconds
        res, used = attempt, polarity
        failed_stage = res.stages.get("quality", {}).get("failed_check")
        if res.status == "ok" or blank or failed_stage not in ("network", "pnp", "pose"):
            break
    out = res.to_json()
    stages = {
        "prepare": {"seconds": round(prep_s, 4), "dewarped": prepared.dewarped},
        "load": {"seconds": round(load_s, 4)},
        **out["stages"],
    }
    stages.setdefault("preprocess", {"seconds": 0.0})["polarity"] = used
    quality = {
        "inlier_ratio": round(res.n_inliers / res.n_correspondences, 4)
        if res.n_correspondences
        else 0.0,
        "similarity": out["similarity"],
        "median_uncertainty_mm": out["stages"].get("network", {}).get("median_uncertainty_mm"),
        "bone_in_view_fraction": out["stages"].get("quality", {}).get("bone_in_view_fraction"),
        "local_similarity": out["stages"].get("quality", {}).get("local_similarity"),
        "mask_dice": out["stages"].get("quality", {}).get("mask_dice"),
        "failed_check": out["stages"].get("quality", {}).get("failed_check"),
        "initial_pose": "header angles" if T_init is not None else None,
        "device": device,
    }
    overlay = drr = None
    if res.status == "ok":
        report(0.85, "rendering the overlay and the DRR")
        t_pic = time.perf_counter()
        overlay, drr = render_pictures(
            volume, model.bone_threshold_hu, prepared, res.T_cam_from_world, used
        )
        stages["render"] = {"seconds": round(time.perf_counter() - t_pic, 4)}
        gt = reg.xray.ground_truth or {}
        if gt.get("T_cam_from_world"):
            quality.update(
                true_target_error(volume, model.meta, res.T_cam_from_world, gt["T_cam_from_world"])
            )
    with transaction.atomic():
        reg.status = Registration.Status.OK if res.status == "ok" else Registration.Status.FAILED
        reg.message = (out["message"] or res.status)[:500]
        reg.T_cam_from_world = out["T_cam_from_world"]
        reg.camera = prepared.camera.to_json()
        reg.quality = quality
        reg.stages = stages
        reg.seconds = round(time.perf_counter() - t0, 4)
        reg.n_correspondences = out["n_correspondences"]
        reg.n_inliers = out["n_inliers"]
        reg.similarity = out["similarity"] if out["similarity"] != -1.0 else None
        for f in (reg.overlay_file, reg.drr_file):
            if f:
                f.delete(save=False)
        if overlay is not None:
            reg.overlay_file.save("overlay.png", ContentFile(overlay), save=False)
            reg.drr_file.save("drr.png", ContentFile(drr), save=False)
        reg.save()
    return {
        "registration_id": reg.pk,
        "status": reg.status,
        "message": reg.message,
        "seconds": reg.seconds,
        "true_mtre_mm": quality.get("true_mtre_mm"),
    }


def mark_failed(row, message: str, status=None) -> None:
    """Set a model or registration row to failed (or ``status``) with ``message``."""
    fields = {"status": status or row.Status.FAILED}
    if isinstance(row, Registration):
        fields["message"] = message[:500]
    type(row).objects.filter(pk=row.pk).update(**fields)


def settle_if_job_ended(row) -> None:
    """A model still ``training`` or a registration still ``running`` whose job has ended
    (never published, killed, cancelled while queued) takes the job's outcome."""
    job = row.job
    if job is None or job.status not in ("failed", "cancelled", "succeeded"):
        return
    if isinstance(row, RegistrationModel) and row.status == RegistrationModel.Status.TRAINING:
        row.refresh_from_db(fields=["status"])
        if row.status == RegistrationModel.Status.TRAINING and job.status != "succeeded":
            status = (
                RegistrationModel.Status.CANCELLED
                if job.status == "cancelled"
                else RegistrationModel.Status.FAILED
            )
            RegistrationModel.objects.filter(
                pk=row.pk, status=RegistrationModel.Status.TRAINING
            ).update(status=status)
            row.status = status
    elif isinstance(row, Registration) and row.status == Registration.Status.RUNNING:
        row.refresh_from_db(fields=["status", "message"])
        if row.status == Registration.Status.RUNNING and job.status != "succeeded":
            message = (job.error_line or f"the job was {job.status}")[:500]
            Registration.objects.filter(pk=row.pk, status=Registration.Status.RUNNING).update(
                status=Registration.Status.FAILED, message=message
            )
            row.status, row.message = Registration.Status.FAILED, message


# --------------------------------------------------------------------------- review


def review_registration(
    reg: Registration, user, decision: str, comment: str = "", request=None
) -> Registration:
    """Accept or reject ``reg`` with a comment (reviewers only; checked by the caller)."""
    if decision not in (Registration.Review.ACCEPTED, Registration.Review.REJECTED):
        raise RegistrationRefused("the decision must be 'accepted' or 'rejected'")
    if reg.status == Registration.Status.RUNNING:
        raise RegistrationRefused("the registration is still running")
    if decision == Registration.Review.REJECTED and not comment.strip():
        raise RegistrationRefused("say why the registration is rejected (comment)")
    reg.review_status = decision
    reg.review_comment = comment.strip()[:2000]
    reg.reviewed_by = user
    reg.reviewed_at = timezone.now()
    reg.save(update_fields=["review_status", "review_comment", "reviewed_by", "reviewed_at"])
    audit.record(
        request,
        "update",
        patient=reg.xray.patient,
        obj=reg,
        detail=f"registration {decision}: {comment.strip()[:200]}",
        user=user,
    )
    return reg


def landmark_error(reg: Registration, u_px: float, v_px: float, xyz_mm) -> tuple[float, float]:
    """(error px, error mm at the detector) between the picked pixel and the projection of
    the CT point (LPS mm) with the registration's pose and camera."""
    from registration.engine.camera import Camera, project

    if reg.status != Registration.Status.OK or not reg.T_cam_from_world:
        raise RegistrationRefused("only a successful registration has a pose to measure")
    camera = Camera.from_json(reg.camera)
    T = np.asarray(reg.T_cam_from_world, dtype=np.float64)
    X = np.asarray(xyz_mm, dtype=np.float64).reshape(1, 3)
    if (X @ T[2, :3] + T[2, 3])[0] <= 0:
        raise RegistrationRefused("the CT point lies behind the X-ray source for this pose")
    uv = project(X, camera.K, T)[0]
    du, dv = float(uv[0] - u_px), float(uv[1] - v_px)
    sx, sy = camera.pixel_spacing_mm
    return math.hypot(du, dv), math.hypot(du * sx, dv * sy)


def add_landmark(
    reg: Registration, user, u_px: float, v_px: float, xyz_mm, request=None
) -> LandmarkPair:
    values = [float(u_px), float(v_px), *[float(x) for x in xyz_mm]]
    if len(values) != 5 or not all(math.isfinite(x) for x in values):
        raise RegistrationRefused("a landmark needs finite u, v (px) and x, y, z (LPS mm)")
    cam = reg.camera or {}
    W, H = cam.get("width", 0), cam.get("height", 0)
    if not (-0.5 <= values[0] <= W - 0.5 and -0.5 <= values[1] <= H - 0.5):
        raise RegistrationRefused(
            f"the 2D landmark ({values[0]:.1f}, {values[1]:.1f}) px is outside the {W}x{H} image"
        )
    err_px, err_mm = landmark_error(reg, values[0], values[1], values[2:])
    pair = LandmarkPair.objects.create(
        registration=reg,
        u_px=values[0],
        v_px=values[1],
        x_mm=values[2],
        y_mm=values[3],
        z_mm=values[4],
        error_px=err_px,
        error_mm_at_detector=err_mm,
        created_by=user,
    )
    audit.record(
        request,
        "create",
        patient=reg.xray.patient,
        obj=pair,
        detail=f"landmark on registration {reg.pk}: {err_px:.2f} px",
        user=user,
    )
    return pair
