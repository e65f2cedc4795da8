"""End-to-end latency of the intra-operative session (``manage.py bench_session``): from the
start of a shot's C-STORE to its overlay on the session page.

The run uses the configured database, media and broker: a bench patient (``BENCH-OR-0001``,
care team "Bench operating room") with the tiny synthetic bone CT and no trained model (so
every registration runs training-free), a session opened for it by a bench surgeon (no
usable password), a DICOM listener on a free loopback port in this process, and a Celery
worker started as the site starts it (``scripts/serve.py``: prefork, one process, one task
per child) unless ``worker="none"`` (then the running workers take the jobs).

Shots (:mod:`webapp.operating.bench_shots`) are sent one after another, each on its own
association; for each, the session feed the page polls (``operating:session-json``, through
the full Django request stack) is read every ``poll_s`` seconds until the shot's tile
reports the overlay, then the overlay PNG is fetched as the page fetches it. Times in
seconds from the C-STORE start. The page itself polls every second, which adds 0-1 s.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import quote

import numpy as np
from django.conf import settings

from refusal import Refused

BENCH_MRN = "BENCH-OR-0001"
BENCH_TEAM = "Bench operating room"
BENCH_USER = "bench-or-surgeon"
PAGE_POLL_S = 1.0  # static/js/operating_session.js POLL_MS
WORKER_READY_TIMEOUT_S = 180.0
QUIET_LOGGERS = ("pynetdicom", "axes")


class BenchRefused(Refused):
    """The benchmark cannot run (message says why)."""


@dataclass
class ShotTiming:
    """One shot: seconds from the C-STORE start to its answer (``store_s``), to its tile in
    the feed (``tile_s``) and to its overlay fetched (``overlay_s``; None unless ok)."""

    index: int
    primary_deg: float
    secondary_deg: float
    store_s: float | None = None
    tile_s: float | None = None
    overlay_s: float | None = None
    registration_s: float | None = None
    state: str = ""
    mode: str | None = None
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.overlay_s is not None


def bench_scene():
    """``(patient, study, user)``: the bench patient with a ready tiny CT (made once) and
    the bench surgeon in its care team."""
    from django.contrib.auth.models import Group, User

    from webapp.core.roles import SURGEON
    from webapp.operating.bench_shots import bench_volume
    from webapp.records.models import CareTeam, CTStudy, Patient
    from webapp.records.volume_store import save_volume

    team, _ = CareTeam.objects.get_or_create(name=BENCH_TEAM)
    user, created = User.objects.get_or_create(username=BENCH_USER)
    if created:
        user.set_unusable_password()
        user.save()
    user.groups.add(Group.objects.get_or_create(name=SURGEON)[0])
    team.members.add(user)
    patient, _ = Patient.objects.get_or_create(
        mrn=BENCH_MRN, defaults={"family_name": "Bench", "given_name": "Session"}
    )
    patient.care_teams.add(team)
    study = CTStudy.objects.filter(patient=patient, status=CTStudy.Status.READY).first()
    if study is None:
        study = CTStudy(patient=patient, description="tiny synthetic bone CT (bench)",
                        status=CTStudy.Status.READY)
        save_volume(study, bench_volume())
        study.save()
    return patient, study, user


def database_url() -> str:
    """The URL of the database this process uses (the test database under pytest)."""
    from django.db import connection

    d = connection.settings_dict
    if d["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{d['NAME']}"
    if "postgresql" not in d["ENGINE"]:
        raise BenchRefused(f"cannot hand the database {d['ENGINE']} to a worker process")
    auth = quote(d.get("USER") or "", safe="")
    if d.get("PASSWORD"):
        auth += ":" + quote(d["PASSWORD"], safe="")
    port = f":{d['PORT']}" if d.get("PORT") else ""
    return f"postgres://{auth}@{d.get('HOST') or 'localhost'}{port}/{d['NAME']}"


def start_worker(log_path: Path) -> subprocess.Popen:
    """A Celery worker on the cpu and gpu queues, started like scripts/serve.py starts it,
    on this process's database, media folder and broker."""
    env = dict(
        os.environ,
        DATABASE_URL=database_url(),
        DJANGO_MEDIA_ROOT=str(settings.MEDIA_ROOT),
        CELERY_BROKER_URL=str(settings.CELERY_BROKER_URL),
        PYTHONUNBUFFERED="1",
    )
    argv = [sys.executable, "-m", "celery", "-A", "webapp", "worker", "-Q", "cpu,gpu",
            "-c", "1", "--max-tasks-per-child", "1", "--loglevel", "WARNING",
            "-n", f"bench-session-{os.getpid()}@%h"]
    with open(log_path, "ab") as log:
        return subprocess.Popen(argv, cwd=str(settings.BASE_DIR), env=env, stdout=log,
                                stderr=subprocess.STDOUT)


def stop_worker(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def wait_for_worker(user, timeout_s: float = WORKER_READY_TIMEOUT_S) -> float:
    """Seconds until a diagnostic job on the cpu queue succeeds (a worker consumes)."""
    from webapp.jobs.models import Job
    from webapp.jobs.services import submit_job

    t0 = time.perf_counter()
    job = submit_job("diagnostic_sleep", params={"seconds": 0.0, "steps": 1}, user=user)
    while time.perf_counter() - t0 < timeout_s:
        status = Job.objects.filter(pk=job.pk).values_list("status", flat=True).first()
        if status == Job.Status.SUCCEEDED:
            return time.perf_counter() - t0
        if status in (Job.Status.FAILED, Job.Status.CANCELLED):
            raise BenchRefused(f"the worker's diagnostic job ended {status}")
        time.sleep(0.2)
    raise BenchRefused(f"no worker took a job within {timeout_s:.0f} s (is the broker up?)")


class Feed:
    """The session feed and images read through Django's request stack as the bench
    surgeon (what the page's fetch() gets)."""

    def __init__(self, user, session) -> None:
        from django.test import Client
        from django.urls import reverse

        hosts = [h for h in settings.ALLOWED_HOSTS if h and h != "*" and not h.startswith(".")]
        self.client = Client(HTTP_HOST=hosts[0] if hosts else "localhost")
        self.client.force_login(user)
        self.secure = bool(getattr(settings, "SECURE_SSL_REDIRECT", False))
        self.url = reverse("operating:session-json", args=[session.pk])

    def shots(self) -> list[dict]:
        response = self.client.get(self.url, secure=self.secure)
        if response.status_code != 200:
            raise BenchRefused(f"the session feed answered HTTP {response.status_code}")
        return response.json()["shots"]

    def image_ok(self, url: str) -> bool:
        response = self.client.get(url, secure=self.secure)
        return response.status_code == 200 and response.content[:4] == b"\x89PNG"


def measure_shot(feed: Feed, port: int, ds, row: ShotTiming, known: set[int], *,
                 timeout_s: float, poll_s: float) -> ShotTiming:
    """Send ``ds`` and follow its tile until the overlay is shown, refused or timed out."""
    from webapp.operating.bench_shots import c_store

    t0 = time.perf_counter()
    status, comment = c_store(port, ds)
    row.store_s = time.perf_counter() - t0
    if status != 0:
        row.state, row.message = "not stored", f"C-STORE status {status:#06x}: {comment}"
        return row
    tile = None
    while time.perf_counter() - t0 < timeout_s:
        fresh = [t for t in feed.shots() if t["id"] not in known]
        if fresh:
            tile = fresh[0]
            if row.tile_s is None:
                row.tile_s = time.perf_counter() - t0
            row.state, row.message, row.mode = tile["state"], tile["message"], tile["mode"]
            if tile["state"] == "registered" and tile["overlay_url"]:
                if feed.image_ok(tile["overlay_url"]):
                    row.overlay_s = time.perf_counter() - t0
                    row.registration_s = tile["seconds"]
                    break
            elif tile["state"] == "refused":
                break
        time.sleep(poll_s)
    else:
        row.state = "timed out"
        row.message = f"no overlay within {timeout_s:g} s (last state: {tile and tile['state']})"
    if tile is not None:
        known.add(tile["id"])
    return row


def stats(values: list[float]) -> dict:
    """median, p95 (linear interpolation), max, min and mean in seconds; empty: Nones."""
    if not values:
        return {"n": 0, "median": None, "p95": None, "max": None, "min": None, "mean": None}
    arr = np.asarray(values, dtype=np.float64)
    return {
        "n": int(arr.size),
        "median": round(float(np.median(arr)), 3),
        "p95": round(float(np.percentile(arr, 95)), 3),
        "max": round(float(arr.max()), 3),
        "min": round(float(arr.min()), 3),
        "mean": round(float(arr.mean()), 3),
    }


def summarise(rows: list[ShotTiming], **context) -> dict:
    ok = [r for r in rows if r.ok]
    return {
        "shots": len(rows),
        "ok": len(ok),
        "failures": len(rows) - len(ok),
        "overlay_s": stats([r.overlay_s for r in ok]),
        "tile_s": stats([r.tile_s for r in rows if r.tile_s is not None]),
        "store_s": stats([r.store_s for r in rows if r.store_s is not None]),
        "registration_s": stats([r.registration_s for r in ok if r.registration_s is not None]),
        "page_poll_s": PAGE_POLL_S,
        **context,
        "rows": [{k: (round(v, 3) if isinstance(v, float) else v) for k, v in asdict(r).items()}
                 for r in rows],
    }


def run_bench(*, shots: int, timeout_s: float, poll_s: float, worker: str, seed: int = 0,
              report: Callable[[str], None] = print) -> dict:
    """Run the benchmark (see the module docstring); returns :func:`summarise`'s dict."""
    from registration.engine.drr import DrrRenderer
    from webapp.dicomnet.config import node_config
    from webapp.dicomnet.server import DicomNode
    from webapp.operating.bench_shots import (
        CT_SPACING_MM,
        CT_VOXELS,
        SIZE_PX,
        bench_angles,
        bench_volume,
        shot_dataset,
        shot_pixels,
    )
    from webapp.operating.services import close_session, open_session, open_session_for

    for name in QUIET_LOGGERS:  # one line per association otherwise
        logging.getLogger(name).setLevel(logging.WARNING)
    patient, _study, user = bench_scene()
    stale = open_session_for(patient)
    if stale is not None:  # left open by an interrupted run
        close_session(stale, user=user)
    renderer = DrrRenderer(bench_volume(), bone_threshold_hu=200.0)
    angles = bench_angles(shots, seed)
    datasets = [shot_dataset(shot_pixels(renderer, p, s), mrn=BENCH_MRN, primary_deg=p,
                             secondary_deg=s) for p, s in angles]
    proc = log_path = None
    node = DicomNode(node_config(host="127.0.0.1", port=0))
    session = None
    try:
        if worker == "process":
            log_path = Path(tempfile.mkdtemp(prefix="bench-session-")) / "worker.log"
            proc = start_worker(log_path)
            report(f"worker started (pid {proc.pid}, log {log_path})")
        ready_s = wait_for_worker(user)
        report(f"a worker took the first job after {ready_s:.1f} s")
        node.start()
        session, _ = open_session(patient=patient, operation="bench_session", user=user)
        feed = Feed(user, session)
        rows: list[ShotTiming] = []
        known: set[int] = set()
        for i, ((p, s), ds) in enumerate(zip(angles, datasets, strict=True), start=1):
            row = measure_shot(feed, node.port, ds, ShotTiming(i, p, s), known,
                               timeout_s=timeout_s, poll_s=poll_s)
            rows.append(row)
            report(format_row(row))
    finally:
        node.stop()
        if session is not None:
            close_session(session, user=user)
        if proc is not None:
            stop_worker(proc)
    return summarise(
        rows, poll_s=poll_s, worker=worker, worker_ready_s=round(ready_s, 3),
        cpu_count=os.cpu_count(), image_px=SIZE_PX,
        ct={"voxels": CT_VOXELS, "spacing_mm": CT_SPACING_MM}, seed=seed,
    )


def _s(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def format_row(row: ShotTiming) -> str:
    angles = f"{row.primary_deg:+.1f}/{row.secondary_deg:+.1f}"
    line = (f"{row.index:>4} {angles:>12} {_s(row.store_s):>8} {_s(row.tile_s):>8} "
            f"{_s(row.overlay_s):>8} {_s(row.registration_s):>8}  {row.state}")
    return line if row.ok else f"{line}: {row.message}"


HEADER = f"{'shot':>4} {'angles':>12} {'C-STORE':>8} {'tile':>8} {'overlay':>8} {'register':>8}  state"


def format_table(result: dict) -> str:
    """The per-shot table (seconds) and the summary lines."""
    lines = [HEADER]
    lines += [format_row(ShotTiming(**row)) for row in result["rows"]]
    o, t, s = result["overlay_s"], result["tile_s"], result["store_s"]
    lines += [
        "",
        f"C-STORE -> overlay on the page, {result['shots']} shots, {result['ok']} ok, "
        f"{result['failures']} failures: median {_s(o['median'])} s, p95 {_s(o['p95'])} s, "
        f"max {_s(o['max'])} s",
        f"C-STORE -> tile: median {_s(t['median'])} s, p95 {_s(t['p95'])} s; C-STORE answered: "
        f"median {_s(s['median'])} s, p95 {_s(s['p95'])} s",
        f"(feed read every {result['poll_s']:g} s; the page polls every {PAGE_POLL_S:g} s, "
        f"which adds 0-{PAGE_POLL_S:g} s; {result['cpu_count']} CPUs)",
    ]
    return "\n".join(lines)
