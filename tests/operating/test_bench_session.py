"""``manage.py bench_session`` runs end to end (listener, worker process, session feed) and
reports a table and JSON with the documented fields; timings are not judged here."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import CommandError, call_command

from tests.dicomnet.conftest import node_settings  # noqa: F401
from tests.jobs.conftest import (  # noqa: F401 - fixtures
    broker_ready,
    celery_worker,
    fast_heartbeat,
    purged_queues,
)

STAT_KEYS = {"n", "median", "p95", "max", "min", "mean"}
ROW_KEYS = {"index", "primary_deg", "secondary_deg", "store_s", "tile_s", "overlay_s",
            "registration_s", "state", "mode", "message"}


@pytest.mark.worker
@pytest.mark.slow
def test_two_shots_give_a_table_and_json(node_settings, purged_queues, transactional_db, tmp_path):  # noqa: F811
    from webapp.operating.bench import BENCH_MRN
    from webapp.operating.models import OperatingSession, SessionShot

    out = tmp_path / "bench_session.json"
    stdout = io.StringIO()
    call_command("bench_session", "--shots", "2", "--json", str(out), "--timeout-s", "600",
                 stdout=stdout)
    text = stdout.getvalue()
    data = json.loads(out.read_text())
    assert data["shots"] == 2 and data["failures"] == 0, data["rows"]
    assert data["ok"] == 2 and data["worker"] == "process" and data["cpu_count"] >= 1
    for key in ("overlay_s", "tile_s", "store_s", "registration_s"):
        assert set(data[key]) == STAT_KEYS, key
    assert data["overlay_s"]["n"] == 2
    assert data["overlay_s"]["median"] <= data["overlay_s"]["p95"] <= data["overlay_s"]["max"]
    assert [row["index"] for row in data["rows"]] == [1, 2]
    for row in data["rows"]:
        assert set(row) == ROW_KEYS
        assert row["state"] == "registered" and row["mode"] == "training-free"
        assert 0 < row["store_s"] <= row["tile_s"] <= row["overlay_s"]
        assert row["registration_s"] < row["overlay_s"]
    assert "C-STORE -> overlay on the page, 2 shots, 2 ok, 0 failures: median" in text
    assert "p95" in text and "max" in text and f"wrote {out}" in text
    session = OperatingSession.objects.get(patient__mrn=BENCH_MRN)
    assert not session.is_open  # closed after the run
    assert SessionShot.objects.filter(session=session).count() == 2


@pytest.mark.worker
@pytest.mark.slow
def test_the_running_worker_takes_the_jobs_with_worker_none(node_settings, celery_worker, tmp_path):  # noqa: F811
    out = tmp_path / "bench_session.json"
    stdout = io.StringIO()
    call_command("bench_session", "--shots", "1", "--worker", "none", "--json", str(out),
                 "--timeout-s", "600", stdout=stdout)
    data = json.loads(out.read_text())
    assert data["worker"] == "none" and data["ok"] == 1, data["rows"]
    assert "C-STORE -> overlay on the page, 1 shots, 1 ok, 0 failures" in stdout.getvalue()


@pytest.mark.parametrize(
    ("args", "words"),
    [(["--shots", "0"], "--shots must be from 1 to 200"),
     (["--poll-s", "0"], "--poll-s 0.01-5"),
     (["--json", "/no/such/folder/out.json"], "does not exist")],
)
def test_bad_options_are_refused_before_anything_runs(db, args, words):
    from webapp.records.models import Patient

    with pytest.raises(CommandError, match=words):
        call_command("bench_session", *args, stdout=io.StringIO())
    assert not Patient.objects.exists()
