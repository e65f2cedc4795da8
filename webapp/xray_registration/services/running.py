"""Registering an X-ray: queueing the job, the worker-side run that calls the engine, and
storing the pose, quality figures, stage timings, overlay and DRR.

Frames and units: poses ``T_cam_from_world`` map CT LPS mm to camera mm; pixels are
``(u, v)`` = (column, row) of the (dewarped) image the registration used.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from django.core.files.base import ContentFile
from django.db import transaction

from webapp.core import audit
from webapp.records.models import XrayImage
from webapp.xray_registration.models import Registration, RegistrationModel
from webapp.xray_registration.services.common import RegistrationRefused, device_name, one_line
from webapp.xray_registration.services.model_store import download_model_dir
from webapp.xray_registration.services.prepared_xray import PreparedXray, prepare_xray

TRUE_ERROR_POINTS = 2000
# Bone threshold (HU) of a training-free registration: the one training uses by default.
TRAINING_FREE_BONE_HU = 200.0


def start_registration(
    xray: XrayImage, *, user=None, request=None, study=None
) -> Registration:
    """Queue the registration of ``xray`` (kind ``register_xray``, gpu queue): with the
    latest ready model of one of its patient's CT studies (of ``study`` when given), else
    in training-free mode against ``study`` or the patient's latest ready CT (no network:
    the DRR library and the header angles start it). Raises :class:`RegistrationRefused`
    when the patient has no CT, or ``study`` is not a ready CT of the patient."""
    from webapp.jobs.services import submit_job
    from webapp.records.models import CTStudy

    if study is not None and (
        study.patient_id != xray.patient_id or study.status != CTStudy.Status.READY
    ):
        raise RegistrationRefused("the chosen CT study is not a ready CT of this patient")
    models = RegistrationModel.objects.filter(
        study__patient=xray.patient, status=RegistrationModel.Status.READY
    )
    if study is not None:
        models = models.filter(study=study)
    model = models.select_related("study").order_by("-created_at").first()
    if study is None:
        study = model.study if model is not None else (
            CTStudy.objects.filter(patient=xray.patient, status=CTStudy.Status.READY)
            .exclude(volume_file="")
            .order_by("-created_at")
            .first()
        )
    if study is None:
        raise RegistrationRefused("the patient has no CT study ready: import the CT first")
    mode = "with a trained model" if model is not None else "in training-free mode"
    with transaction.atomic():
        reg = Registration.objects.create(xray=xray, study=study, model=model, created_by=user)
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
            detail=f"registration of X-ray {xray.pk} to CT {study.pk} started {mode}",
            user=user,
        )
    return reg


def header_initial_pose(xray: XrayImage, centre_lps_mm) -> np.ndarray | None:
    """A rough start from the header's C-arm angles and source-to-patient distance, aimed
    at ``centre_lps_mm`` (the bone centre of the CT); None when the header lacks them."""
    from geometry.carm import carm_pose

    if xray.primary_angle_deg is None or xray.secondary_angle_deg is None:
        return None
    sip = xray.distance_source_to_patient_mm
    if not sip or sip <= 0 or centre_lps_mm is None:
        return None
    return carm_pose(
        float(xray.primary_angle_deg), float(xray.secondary_angle_deg), float(sip),
        [float(c) for c in centre_lps_mm],
    )


def _bone_centre(volume, threshold_hu: float) -> list[float] | None:
    """Centre (LPS mm) of the CT's bone box, or None for a CT without bone."""
    from registration.engine.dataset import NoBoneError, bone_box

    try:
        return [float(c) for c in bone_box(volume, threshold_hu).centre]
    except NoBoneError:
        return None


def true_target_error(volume, bone_threshold_hu: float, T_est: np.ndarray, T_true) -> dict:
    """mTRE (mm) of ``T_est`` against the ground truth over bone voxels of the CT (seeded
    subset), plus the 95th percentile and the maximum."""
    from geometry.rigid import target_error_mm
    from registration.engine.dataset import bone_points

    points = bone_points(volume, float(bone_threshold_hu), max_points=TRUE_ERROR_POINTS, seed=0)
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


@dataclass
class _RunInputs:
    """What a run registers: the prepared X-ray, the CT volume, the loaded model (None:
    training-free), the bone threshold (HU), the bone centre (LPS mm) for the header start,
    the device, and the seconds spent preparing and loading."""

    prepared: PreparedXray
    volume: Any
    model: Any
    bone_threshold: float
    centre: list[float] | None
    device: str
    prep_s: float
    load_s: float


def run_registration(reg: Registration, report: Callable[[float, str], None]) -> dict:
    """Register ``reg.xray`` with ``reg.model`` (worker side) and store the pose, quality
    figures, stage timings, overlay and DRR. A run whose self-checks fail ends with status
    failed and the reason; bad inputs raise :class:`RegistrationRefused`."""
    t0 = time.perf_counter()
    inputs = _load_inputs(reg, report)
    T_init = header_initial_pose(reg.xray, inputs.centre)
    report(0.35, "registering")
    res = _register(inputs, T_init)
    used = res.stages.get("preprocess", {}).get("polarity", "none")
    out = res.to_json()
    stages = {
        "prepare": {"seconds": round(inputs.prep_s, 4), "dewarped": inputs.prepared.dewarped},
        "load": {"seconds": round(inputs.load_s, 4)},
        **out["stages"],
    }
    quality = _quality_figures(res, out, T_init, inputs)
    overlay = drr = None
    if res.status == "ok":
        report(0.85, "rendering the overlay and the DRR")
        t_pic = time.perf_counter()
        overlay, drr = render_pictures(
            inputs.volume, inputs.bone_threshold, inputs.prepared, res.T_cam_from_world, used
        )
        stages["render"] = {"seconds": round(time.perf_counter() - t_pic, 4)}
        gt = reg.xray.ground_truth or {}
        if gt.get("T_cam_from_world"):
            quality.update(
                true_target_error(inputs.volume, inputs.bone_threshold, res.T_cam_from_world,
                                  gt["T_cam_from_world"])
            )
    _store_outcome(reg, res, out, inputs.prepared, quality, stages, (overlay, drr), t0)
    return {
        "registration_id": reg.pk,
        "status": reg.status,
        "message": reg.message,
        "seconds": reg.seconds,
        "true_mtre_mm": quality.get("true_mtre_mm"),
    }


def _load_inputs(reg: Registration, report: Callable[[float, str], None]) -> _RunInputs:
    """Prepare the X-ray, load the model (when the registration has one) and the CT;
    refuses a model that is not ready, cannot be loaded or was trained on another CT."""
    from registration.engine.model_io import ModelError, ct_fingerprint, load_model
    from webapp.records.volume_store import load_study_volume

    model_row = reg.model
    if model_row is not None and model_row.status != RegistrationModel.Status.READY:
        raise RegistrationRefused("the model of this registration is not ready")
    report(0.05, "preparing the X-ray")
    t_prep = time.perf_counter()
    prepared = prepare_xray(reg.xray)
    prep_s = time.perf_counter() - t_prep
    report(0.2, "loading the CT" + (" and the model" if model_row is not None else ""))
    device = device_name()
    t_load = time.perf_counter()
    model = None
    if model_row is not None:
        with tempfile.TemporaryDirectory() as tmp:
            folder = download_model_dir(model_row, Path(tmp) / "model")
            try:
                model = load_model(folder, device=device)
            except ModelError as exc:
                raise RegistrationRefused(one_line(exc)) from None
    volume = load_study_volume(reg.study)
    if model is not None:
        fp = model.meta.get("ct_fingerprint")
        if fp and fp != ct_fingerprint(volume.array, volume.affine):
            raise RegistrationRefused(
                "the model was trained on a different CT (fingerprint mismatch)"
            )
        bone_threshold = model.bone_threshold_hu
        centre = model.meta.get("normalisation", {}).get("centre_lps_mm")
    else:
        bone_threshold = TRAINING_FREE_BONE_HU
        centre = _bone_centre(volume, bone_threshold)
    load_s = time.perf_counter() - t_load
    return _RunInputs(prepared, volume, model, bone_threshold, centre, device, prep_s, load_s)


def _register(inputs: _RunInputs, T_init: np.ndarray | None):
    """The engine's result for the prepared X-ray (a ``RegistrationResult``); an input the
    engine rejects is refused with its reason."""
    from registration.engine.pipeline import RegistrationOptions
    from registration.engine.stored_image import register_stored

    prepared = inputs.prepared
    options = RegistrationOptions(device=inputs.device)
    try:
        return register_stored(
            inputs.volume, inputs.model, prepared.pixels, prepared.photometric,
            prepared.camera, bits_stored=prepared.bits_stored, T_init=T_init,
            initial_kind="header", options=options,
        )
    except ValueError as exc:
        raise RegistrationRefused(f"cannot register the X-ray: {one_line(exc)}") from None


def _quality_figures(res, out: dict, T_init: np.ndarray | None, inputs: _RunInputs) -> dict:
    """The quality figures stored with a registration (``out`` = ``res.to_json()``)."""
    quality = out["stages"].get("quality", {})
    coarse = {"coarse_ct": True} if quality.get("coarse_ct") else {}
    return coarse | {
        "inlier_ratio": round(res.n_inliers / res.n_correspondences, 4)
        if res.n_correspondences
        else 0.0,
        "similarity": out["similarity"],
        "median_uncertainty_mm": out["stages"].get("network", {}).get("median_uncertainty_mm"),
        "bone_in_view_fraction": quality.get("bone_in_view_fraction"),
        "local_similarity": quality.get("local_similarity"),
        "mask_dice": quality.get("mask_dice"),
        "depth_margin": out["stages"].get("depth_rivals", {}).get("margin"),
        "failed_check": quality.get("failed_check"),
        "initial_pose": "header angles" if T_init is not None else None,
        "mode": "network" if inputs.model is not None else "training-free",
        "start": out["stages"].get("start", {}).get("winner"),
        "device": inputs.device,
    }


def _store_outcome(
    reg: Registration,
    res,
    out: dict,
    prepared: PreparedXray,
    quality: dict,
    stages: dict,
    pictures: tuple[bytes | None, bytes | None],
    t0: float,
) -> None:
    """Save the run's status, message, pose, camera, figures and timings on ``reg``, and
    its overlay and DRR pictures (old ones deleted) in one transaction."""
    overlay, drr = pictures
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
