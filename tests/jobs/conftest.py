"""Fixtures for the job tests: broker folders, a real in-thread Celery worker, polling helpers."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest


def wait_for(
    predicate: Callable[[], object], timeout: float, interval: float = 0.05, what: str = ""
):
    """Poll ``predicate`` until it returns something truthy; fail the test after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what or predicate}")
        time.sleep(interval)


@pytest.fixture
def broker_ready(settings, monkeypatch) -> None:
    """The filesystem broker needs its folders; Redis (CI) needs nothing.

    kombu's filesystem transport keeps its exchange tables in ``control_folder``, by default
    ``./control`` relative to the working directory: run from the broker folder so the tests
    do not litter the repository."""
    if not settings.CELERY_BROKER_URL.startswith("filesystem"):
        return
    options = settings.CELERY_BROKER_TRANSPORT_OPTIONS or {}
    for key in ("data_folder_in", "data_folder_out", "processed_folder", "control_folder"):
        if options.get(key):
            Path(options[key]).mkdir(parents=True, exist_ok=True)
    if not options.get("control_folder"):
        monkeypatch.chdir(Path(options["data_folder_in"]).parent)


@pytest.fixture
def purged_queues(broker_ready) -> None:
    """Drop messages left by earlier runs so a worker only sees this test's jobs."""
    from webapp.celery import app

    with app.connection_for_write() as conn:
        for queue in ("cpu", "gpu"):
            channel = conn.default_channel
            channel.queue_declare(queue=queue, durable=True, auto_delete=False)
            channel.queue_purge(queue)


@pytest.fixture
def fast_heartbeat(settings) -> None:
    settings.ORTHOFUSE_JOB_HEARTBEAT_S = 0.2
    settings.ORTHOFUSE_JOB_STALE_AFTER_S = 2.0
    settings.ORTHOFUSE_JOB_PROGRESS_MIN_INTERVAL_S = 0.0


@pytest.fixture
def celery_worker(transactional_db, purged_queues, fast_heartbeat) -> Iterator[object]:
    """A real Celery worker in a thread, consuming ``cpu`` and ``gpu`` from the configured broker
    (filesystem locally, Redis in CI) and using its own database connection."""
    from celery.contrib.testing.worker import start_worker

    from webapp.celery import app

    with start_worker(
        app,
        pool="solo",
        concurrency=1,
        perform_ping_check=False,
        queues=["cpu", "gpu"],
        shutdown_timeout=30,
        loglevel="WARNING",
    ) as worker:
        yield worker


@pytest.fixture
def temp_kind():
    """Register throwaway job kinds for one test: ``temp_kind("name", handler, **spec)``."""
    from webapp.jobs import registry

    added: list[str] = []

    def add(kind: str, handler, **options) -> str:
        assert kind not in registry._REGISTRY, f"kind {kind!r} already registered"
        registry.register(kind, **options)(handler)
        added.append(kind)
        return kind

    yield add
    for kind in added:
        registry._REGISTRY.pop(kind, None)


@pytest.fixture
def make_job(db):
    """A Job row as submit_job would leave it, without sending a message."""
    from webapp.jobs.models import Job

    def make(kind: str = "diagnostic_sleep", **fields) -> Job:
        fields.setdefault("params", {"seconds": 0.05, "steps": 5})
        return Job.objects.create(kind=kind, **fields)

    return make
