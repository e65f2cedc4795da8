"""What a job handler sees while it runs: :class:`JobContext`.

Every write a context makes is *fenced*: it only touches the row while the row is still
``running`` under this context's attempt number, so a run that was given up on (its worker
was thought dead and the job re-queued or failed) can never overwrite a newer run.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.db.models import QuerySet
from django.utils import timezone

from webapp.jobs.conf import progress_min_interval_s
from webapp.jobs.models import Job
from webapp.jobs.registry import JobCancelled


class JobSuperseded(JobCancelled):
    """This run no longer owns the row (recovered elsewhere, failed or finished meanwhile)."""


class JobContext:
    """Progress, stages, cancellation and live data for one run of one job.

    ``ctx.progress(fraction, message)`` stores progress (0..1) and a short message and
    raises :class:`JobCancelled` when the user asked to cancel; ``with ctx.stage("name"):``
    adds the seconds spent inside to ``job.timings["name"]``; ``ctx.job`` is the row and
    ``ctx.params`` its parameters.
    """

    def __init__(self, job: Job, attempt: int, *, min_interval_s: float | None = None) -> None:
        self.job = job
        self.attempt = attempt
        self._min_interval_s = (
            progress_min_interval_s() if min_interval_s is None else min_interval_s
        )
        self._last_write = -math.inf
        self._dirty = False
        # progress() runs in the handler's thread, beat() in the heartbeat thread. The lock
        # guards these attributes only; it is never held during a database write.
        self._lock = threading.Lock()
        self._written = (job.progress, job.message)  # what the row shows now

    @property
    def params(self) -> dict[str, Any]:
        return self.job.params or {}

    def _owned(self) -> QuerySet[Job]:
        return Job.objects.filter(pk=self.job.pk, status=Job.Status.RUNNING, attempts=self.attempt)

    def progress(
        self,
        fraction: float,
        message: str = "",
        *,
        data: dict[str, Any] | None = None,
        force: bool = False,
    ) -> None:
        """Record progress ``fraction`` (clamped to 0..1) and ``message``.

        ``data`` (JSON) is merged into ``job.live`` for pages that plot while the job runs,
        e.g. ``{"loss": [...]}``. Writes are throttled to one per
        ``ORTHOFUSE_JOB_PROGRESS_MIN_INTERVAL_S``; ``force=True`` or reaching 1.0 always
        writes. Raises :class:`JobCancelled` when cancellation was requested.
        """
        value = float(fraction)
        if not math.isfinite(value):
            raise ValueError(f"progress must be a finite number, got {fraction!r}")
        if data:
            json.dumps(data, allow_nan=False)  # refuse non-JSON early, where the bug is
        with self._lock:
            self.job.progress = min(1.0, max(0.0, value))
            if message:
                self.job.message = str(message)[:500]
            if data:
                self.job.live = {**(self.job.live or {}), **data}
            self._dirty = True
            due = time.monotonic() - self._last_write >= self._min_interval_s
        if force or due or self.job.progress >= 1.0:
            self.flush()

    def _pending_fields(self) -> dict[str, Any]:
        """Under ``self._lock``: the fields to write, and nothing pending afterwards."""
        fields: dict[str, Any] = {"heartbeat_at": timezone.now()}
        if self._dirty:
            fields.update(
                progress=self.job.progress, message=self.job.message, live=dict(self.job.live or {})
            )
        self._dirty = False
        return fields

    def flush(self) -> None:
        """Write pending progress now and check for cancellation."""
        with self._lock:
            fields = self._pending_fields()
        updated = self._owned().filter(cancel_requested=False).update(**fields)
        self._last_write = time.monotonic()
        if not updated:
            self._raise_why_not()
        if "progress" in fields:
            with self._lock:
                self._written = (fields["progress"], fields["message"])

    def beat(self) -> None:
        """Heartbeat (from the heartbeat thread): touch ``heartbeat_at`` and write progress that
        throttling held back, so a long silent step still shows its latest message. The held-back
        values are written only if the row still shows what was last written, so an older
        snapshot never overwrites a newer write from the handler's thread."""
        with self._lock:
            fields = self._pending_fields()
            expected = self._written
        rows = self._owned()
        if "progress" in fields:
            if rows.filter(progress=expected[0], message=expected[1]).update(**fields):
                with self._lock:
                    self._written = (fields["progress"], fields["message"])
                return
            with self._lock:
                self._dirty = True  # written meanwhile or raced: the next flush writes it
        rows.update(heartbeat_at=fields["heartbeat_at"])

    def check_cancelled(self) -> None:
        """Raise :class:`JobCancelled` if the user asked to cancel (one cheap query)."""
        self.flush()

    def _raise_why_not(self) -> None:
        row = (
            Job.objects.filter(pk=self.job.pk)
            .values("status", "attempts", "cancel_requested")
            .first()
        )
        if row and row["status"] == Job.Status.RUNNING and row["attempts"] == self.attempt:
            if row["cancel_requested"]:
                raise JobCancelled("cancelled at the user's request")
        raise JobSuperseded(
            f"job #{self.job.pk} attempt {self.attempt} no longer owns the row "
            f"(now {row['status'] if row else 'deleted'})"
        )

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time the block; seconds add up in ``job.timings[name]`` (also on errors)."""
        start = time.perf_counter()
        failed = False
        try:
            yield
        except BaseException:
            failed = True
            raise
        finally:
            elapsed = time.perf_counter() - start
            timings = dict(self.job.timings or {})
            timings[name] = round(float(timings.get(name, 0.0)) + elapsed, 6)
            self.job.timings = timings
            if not failed:
                self._owned().update(timings=timings)
