"""/healthz checks the database, the broker and the storage: 200 when all answer, else 503
naming the part that failed."""

from __future__ import annotations

import functools
from unittest import mock

import pytest
from django.db import OperationalError
from django.urls import reverse

from webapp.celery import app


@pytest.fixture
def broker_folders(settings):
    """The filesystem broker (local default) needs its folders; Redis (CI) needs nothing."""
    from pathlib import Path

    if settings.CELERY_BROKER_URL.startswith("filesystem"):
        for key in ("data_folder_in", "data_folder_out", "processed_folder"):
            Path(settings.CELERY_BROKER_TRANSPORT_OPTIONS[key]).mkdir(parents=True, exist_ok=True)


def test_healthy_site_answers_200_without_login(client, db, broker_folders):
    response = client.get(reverse("healthz"))
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "ok"
    assert body["checks"] == {"database": "ok", "broker": "ok", "storage": "ok"}


def test_unreachable_broker_answers_503_naming_the_broker(client, db):
    # nothing listens on port 1: the connection is refused at once. (The configured URL may
    # come from CELERY_BROKER_URL in the environment, which Celery prefers over its conf.)
    unreachable = functools.partial(app.connection_for_write, "redis://127.0.0.1:1/0")
    with mock.patch.object(app, "connection_for_write", unreachable):
        response = client.get(reverse("healthz"))
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "error"
    assert body["checks"]["broker"].startswith("error: ")
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["storage"] == "ok"


@pytest.mark.parametrize(
    ("part", "target", "error"),
    [
        ("database", "webapp.core.views._check_database", OperationalError("connection refused")),
        ("storage", "webapp.core.views._check_storage", PermissionError("read-only file system")),
    ],
)
def test_other_broken_parts_are_named(client, db, broker_folders, part, target, error):
    with mock.patch(target, side_effect=error):
        response = client.get(reverse("healthz"))
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks[part] == f"error: {type(error).__name__}: {error}"
    assert [name for name, value in checks.items() if value != "ok"] == [part]
