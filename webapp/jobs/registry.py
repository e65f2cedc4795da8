"""Job kinds and their handlers.

Each app registers its handlers in its own ``jobs.py`` (imported by ``JobsConfig.ready``)::

    @register("dewarp_xray", queue="cpu", soft_time_limit=300)
    def dewarp_xray(job: Job, ctx: JobContext) -> dict:
        ctx.progress(0.5, "remapping")
        return {"xray_id": ...}

A handler must be idempotent (a job can be delivered twice), report progress through
``ctx.progress`` (which also raises ``JobCancelled`` when the user cancelled) and return
a JSON-serialisable result. Raise ``JobError("reason")`` to fail with a clear message.
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
