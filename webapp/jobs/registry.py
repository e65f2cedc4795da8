"""Job kinds and their handlers.

Each app registers its handlers in its own ``jobs.py`` (imported by ``JobsConfig.ready`` in
the web process and in every worker)::

    from webapp.jobs.registry import JobError, register

    @register("dewarp_xray", queue="cpu", soft_time_limit=300)
    def dewarp_xray(job, ctx) -> dict:
        xray = XrayImage.objects.filter(pk=ctx.params.get("xray_id")).first()
        if xray is None:
            raise JobError("the X-ray no longer exists")
        with ctx.stage("remap"):               # seconds land in job.timings["remap"]
            ...
            ctx.progress(0.5, "remapping")     # 0..1; raises JobCancelled if cancelled
        return {"xray_id": xray.pk}            # JSON, stored in job.result

and starts it with ``webapp.jobs.services.submit_job("dewarp_xray", params={...},
user=request.user, patient=xray.patient, request=request)``.

A handler must be idempotent (a job can be delivered twice, and a job whose worker died is
run again from the start), report progress through ``ctx.progress`` (which also raises
``JobCancelled`` when the user cancelled; ``data={...}`` publishes small live JSON such as a
loss curve in ``job.live``) and return a JSON-serialisable result. Raise ``JobError("reason")``
to fail with a clear one-line message; any other exception fails the job as
``internal error: <type>: <message>``. Files go through Django's storage API, never local
paths. Limits: ``soft_time_limit`` seconds (then the job fails with "time limit of N s
exceeded"), ``time_limit`` (hard kill, default soft + 60), ``max_attempts`` runs in total when
workers die.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

JobHandler = Callable[..., dict[str, Any]]


class JobError(Exception):
    """A job failed for a reason the user should read (no traceback shown)."""


class JobCancelled(Exception):
    """Raised inside a handler when the user asked to cancel."""


@dataclass(frozen=True)
class JobSpec:
    kind: str
    handler: JobHandler
    queue: str = "cpu"
    soft_time_limit: int = 600
    time_limit: int = 660
    max_attempts: int = 2
    label: str = ""


_REGISTRY: dict[str, JobSpec] = {}


def register(
    kind: str,
    *,
    queue: str = "cpu",
    soft_time_limit: int = 600,
    time_limit: int | None = None,
    max_attempts: int = 2,
    label: str = "",
) -> Callable[[JobHandler], JobHandler]:
    if queue not in {"cpu", "gpu"}:
        raise ValueError(f"unknown queue {queue!r}")

    def decorate(func: JobHandler) -> JobHandler:
        _REGISTRY[kind] = JobSpec(
            kind=kind,
            handler=func,
            queue=queue,
            soft_time_limit=soft_time_limit,
            time_limit=time_limit or soft_time_limit + 60,
            max_attempts=max_attempts,
            label=label or kind.replace("_", " "),
        )
        return func

    return decorate


def get_spec(kind: str) -> JobSpec:
    try:
        return _REGISTRY[kind]
    except KeyError:
        raise JobError(f"unknown job kind {kind!r}") from None


def all_specs() -> dict[str, JobSpec]:
    return dict(_REGISTRY)
