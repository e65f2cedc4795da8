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


def _forget_broker_connections(app) -> None:
    """Make the app build new connections (and producer pools) from its current conf."""
    app._pool = None
    app.amqp._producer_pool = None


_SESSION_VAR_DIR: list[Path] = []


def _jobs_var_dir(tmp_path_factory) -> Path | None:
    """With the filesystem broker: a private ``ORTHOFUSE_VAR_DIR`` for this test session, so
    that test sessions running side by side on one machine never see each other's messages."""
    from django.conf import settings

    if not settings.CELERY_BROKER_URL.startswith("filesystem"):
        return None
    if not _SESSION_VAR_DIR:
        var_dir = tmp_path_factory.mktemp("jobs-var")
        for sub in ("out", "processed", "control"):
            (var_dir / "broker" / sub).mkdir(parents=True)
        _SESSION_VAR_DIR.append(var_dir)
    return _SESSION_VAR_DIR[0]


@pytest.fixture
def broker_ready(tmp_path_factory, monkeypatch) -> Iterator[None]:
    """A broker that works and belongs to this test session.

    Redis (CI) needs nothing. The filesystem broker gets folders in the session's private var
    folder; worker subprocesses find them through ``ORTHOFUSE_VAR_DIR`` (set here) and, since
    kombu keeps its exchange tables in ``./control`` unless told otherwise, the test runs from
    the broker folder (which also keeps ``control/`` out of the repository)."""
    var_dir = _jobs_var_dir(tmp_path_factory)
    if var_dir is None:
        yield
        return
    from webapp.celery import app

    broker = var_dir / "broker"
    configured = app.conf.broker_transport_options
    app.conf.broker_transport_options = {
        **(configured or {}),
        "data_folder_in": str(broker / "out"),
        "data_folder_out": str(broker / "out"),
        "processed_folder": str(broker / "processed"),
        "control_folder": str(broker / "control"),
    }
    _forget_broker_connections(app)
    monkeypatch.chdir(broker)
    monkeypatch.setenv("ORTHOFUSE_VAR_DIR", str(var_dir))
    try:
        yield
    finally:
        app.conf.broker_transport_options = configured
        _forget_broker_connections(app)


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
