"""Job timing settings (seconds). Each reads a Django setting of the same name, falling back to
the environment variable of that name, then to the default:

- ``ORTHOFUSE_JOB_HEARTBEAT_S`` (10): how often a running job's worker touches
  ``Job.heartbeat_at`` from a background thread.
- ``ORTHOFUSE_JOB_STALE_AFTER_S`` (120): a running job whose heartbeat is older than this is
  treated as abandoned by a dead worker (re-queued or failed by ``recover_stale_jobs``).
- ``ORTHOFUSE_JOB_PROGRESS_MIN_INTERVAL_S`` (0.25): ``ctx.progress`` writes to the database at
  most this often (the last call before a gap is never lost: the next write carries it).
- ``ORTHOFUSE_JOB_RESEND_AFTER_S`` (300): a job still ``queued`` this long after its message
  was sent, on a queue where no job is running, lost its message: it is sent again.
"""

from __future__ import annotations

import os

from django.conf import settings

_DEFAULTS = {
    "ORTHOFUSE_JOB_HEARTBEAT_S": 10.0,
    "ORTHOFUSE_JOB_STALE_AFTER_S": 120.0,
    "ORTHOFUSE_JOB_PROGRESS_MIN_INTERVAL_S": 0.25,
    "ORTHOFUSE_JOB_RESEND_AFTER_S": 300.0,
}


def _seconds(name: str) -> float:
    value = getattr(settings, name, None)
    if value is None:
        raw = os.environ.get(name, "").strip()
        if raw:
            try:
                value = float(raw)
            except ValueError as exc:
                raise ValueError(f"environment variable {name}={raw!r} is not a number") from exc
    if value is None:
        value = _DEFAULTS[name]
    value = float(value)
    if value < 0:
        raise ValueError(f"{name} must not be negative (got {value})")
    return value


def heartbeat_interval_s() -> float:
    return max(0.05, _seconds("ORTHOFUSE_JOB_HEARTBEAT_S"))


def stale_after_s() -> float:
    """Never less than three heartbeats, so a live worker is not mistaken for a dead one."""
    return max(_seconds("ORTHOFUSE_JOB_STALE_AFTER_S"), 3 * heartbeat_interval_s())


def progress_min_interval_s() -> float:
    return _seconds("ORTHOFUSE_JOB_PROGRESS_MIN_INTERVAL_S")


def resend_after_s() -> float:
    """Never less than the stale limit, so a busy worker's queue is not flooded."""
    return max(_seconds("ORTHOFUSE_JOB_RESEND_AFTER_S"), stale_after_s())
