"""Training a per-patient registration model: queueing the job and the worker-side run."""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable
from pathlib import Path

from django.db import transaction

from webapp.core import audit
from webapp.env import training_overrides
from webapp.records.models import CTStudy
from webapp.xray_registration.models import RegistrationModel
from webapp.xray_registration.services.common import RegistrationRefused, device_name, one_line
from webapp.xray_registration.services.model_store import MODEL_PREFIX, upload_model_dir
from webapp.xray_registration.services.prepared_xray import training_camera

PRESETS = ("quick", "standard", "full")


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
    preset = get_preset(model.preset, training_overrides())
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
        raise RegistrationRefused(one_line(exc)) from None
    meta = result.meta
    meta["ct_fingerprint"] = ct_fingerprint(volume.array, volume.affine)
    meta["ct_shape"] = list(volume.shape)
    meta["versions"] = versions()
    meta["study_id"] = study.pk
    report(0.96, "storing the model", None)
    with tempfile.TemporaryDirectory() as tmp:
        folder = save_model(Path(tmp) / "model", result.net, meta)
        upload_model_dir(model, folder)
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
