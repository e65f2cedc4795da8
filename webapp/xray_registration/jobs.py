"""Registration job handlers (gpu queue): training a per-study model, registering an X-ray.

Both use the engine through :mod:`webapp.xray_registration.services`; a refused input fails the job
with its one-line reason and leaves the row failed (never half-stored), a user's cancel
leaves the model cancelled.
"""

from __future__ import annotations

from webapp.jobs.registry import JobCancelled, JobError, register
from webapp.xray_registration.models import Registration, RegistrationModel
from webapp.xray_registration.services import (
    RegistrationRefused,
    delete_model_files,
    mark_failed,
    run_registration,
    run_training,
)


@register(
    "train_registration_model",
    queue="gpu",
    soft_time_limit=11 * 3600,
    max_attempts=1,
    label="Registration model training",
)
def train_registration_model(job, ctx) -> dict:
    model = (
        RegistrationModel.objects.select_related("study__patient")
        .filter(pk=job.params.get("model_id"))
        .first()
    )
    if model is None:
        raise JobError("the registration model no longer exists")
    if model.status == RegistrationModel.Status.READY:
        return {"model_id": model.pk, "note": "already trained"}

    def report(fraction: float, message: str, point: dict | None) -> None:
        ctx.progress(fraction, message, data={"last_point": point} if point else None)

    try:
        with ctx.stage("train"):
            result = run_training(model, report)
    except JobCancelled:
        delete_model_files(model)
        mark_failed(model, "", RegistrationModel.Status.CANCELLED)
        raise
    except RegistrationRefused as exc:
        delete_model_files(model)
        mark_failed(model, str(exc))
        raise JobError(str(exc)) from None
    except BaseException:
        delete_model_files(model)
        mark_failed(model, "")
        raise
    ctx.progress(1.0, f"model ready ({result.get('steps_done')} steps)")
    return result


@register("register_xray", queue="gpu", soft_time_limit=600, label="X-ray registration")
def register_xray(job, ctx) -> dict:
    reg = (
        Registration.objects.select_related("xray__patient", "xray__carm", "study", "model")
        .filter(pk=job.params.get("registration_id"))
        .first()
    )
    if reg is None:
        raise JobError("the registration no longer exists")

    def report(fraction: float, message: str) -> None:
        ctx.progress(fraction, message)

    try:
        with ctx.stage("register"):
            result = run_registration(reg, report)
    except JobCancelled:
        mark_failed(reg, "cancelled by the user")
        raise
    except RegistrationRefused as exc:
        mark_failed(reg, str(exc))
        raise JobError(str(exc)) from None
    except BaseException as exc:
        mark_failed(reg, f"registration failed: {type(exc).__name__}")
        raise
    ctx.progress(1.0, result["message"])
    return result
