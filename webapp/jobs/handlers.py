"""Built-in job kinds: diagnostics that check the workers of each queue."""

from __future__ import annotations

import os
import time
from typing import Any

from webapp.jobs.registry import JobError, register


def _number(params: dict[str, Any], name: str, default: float, low: float, high: float) -> float:
    value = params.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise JobError(
            f"parameter {name!r} must be a number from {low:g} to {high:g} (got {value!r})"
        )
    return float(value)


def _sleep_in_steps(job, ctx) -> dict[str, Any]:
    params = ctx.params
    seconds = _number(params, "seconds", 2.0, 0.0, 600.0)
    steps = int(_number(params, "steps", 4, 1, 1000))
    fail = params.get("fail", False)
    if not isinstance(fail, bool):
        raise JobError(f"parameter 'fail' must be true or false (got {fail!r})")
    start = time.perf_counter()
    with ctx.stage("sleep"):
        for step in range(1, steps + 1):
            time.sleep(seconds / steps)
            if fail and step * 2 >= steps:
                raise JobError(f"diagnostic failure requested (failed at step {step} of {steps})")
            ctx.progress(step / steps, f"step {step} of {steps}", data={"step": step})
    return {
        "steps": steps,
        "slept_s": round(time.perf_counter() - start, 3),
        "worker": job.worker,
        "pid": os.getpid(),
        "attempt": job.attempts,
    }


@register(
    "diagnostic_sleep",
    queue="cpu",
    soft_time_limit=660,
    max_attempts=2,
    label="Diagnostic: sleep (CPU queue)",
)
def diagnostic_sleep(job, ctx) -> dict[str, Any]:
    """Sleeps ``seconds`` (0-600, default 2) in ``steps`` (1-1000, default 4), reporting progress
    after each; ``fail: true`` raises a :class:`JobError` halfway. Checks CPU workers."""
    return _sleep_in_steps(job, ctx)


@register(
    "diagnostic_gpu",
    queue="gpu",
    soft_time_limit=660,
    max_attempts=1,
    label="Diagnostic: GPU worker",
)
def diagnostic_gpu(job, ctx) -> dict[str, Any]:
    """Like ``diagnostic_sleep`` on the ``gpu`` queue, and reports the worker's CUDA devices."""
    result = _sleep_in_steps(job, ctx)
    with ctx.stage("cuda_probe"):
        import torch

        cuda = torch.cuda.is_available()
        result["cuda_available"] = cuda
        result["devices"] = (
            [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
            if cuda
            else []
        )
        result["torch"] = torch.__version__
    return result
