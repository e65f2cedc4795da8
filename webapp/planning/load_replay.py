"""Replaying a planning session from many signed-in users at once (no Django imports), for
``manage.py bench_load``: the virtual users sign in through the login form (timed apart),
then each asks for the pages and API calls a surgeon's planning session makes, one every
``think_s`` seconds (jittered), for the measured window. Latencies are wall-clock seconds
per request."""

from __future__ import annotations

import random
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import requests

CSRF_INPUT = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


@dataclass(frozen=True)
class Step:
    """One request of the session: a label for the report and a path on the site."""

    label: str
    path: str


@dataclass
class Sample:
    label: str
    seconds: float
    ok: bool
    status: int | str


@dataclass
class Recorder:
    """Thread-safe store of samples."""

    samples: list[Sample] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, sample: Sample) -> None:
        with self.lock:
            self.samples.append(sample)


def sign_in(base_url: str, username: str, password: str, recorder: Recorder) -> requests.Session:
    """A session signed in through the login form (CSRF token from the page)."""
    session = requests.Session()
    t0 = time.perf_counter()
    page = session.get(f"{base_url}/login/", timeout=30)
    match = CSRF_INPUT.search(page.text)
    token = match.group(1) if match else session.cookies.get("csrftoken", "")
    response = session.post(
        f"{base_url}/login/",
        data={"username": username, "password": password, "csrfmiddlewaretoken": token},
        headers={"Referer": f"{base_url}/login/"},
        timeout=30,
        allow_redirects=False,
    )
    ok = response.status_code in (302, 303)
    recorder.add(Sample("sign-in", time.perf_counter() - t0, ok, response.status_code))
    if not ok:
        raise RuntimeError(f"{username} could not sign in (HTTP {response.status_code})")
    return session


def run_user(
    session: requests.Session,
    base_url: str,
    steps: Sequence[Step],
    deadline: float,
    think_s: float,
    recorder: Recorder,
    seed: int,
) -> None:
    """One signed-in virtual user: cycle through ``steps`` until ``deadline``."""
    rng = random.Random(seed)
    index = rng.randrange(len(steps))
    time.sleep(rng.uniform(0.0, think_s))  # users do not all start on the same tick
    while time.perf_counter() < deadline:
        step = steps[index % len(steps)]
        index += 1
        t0 = time.perf_counter()
        try:
            response = session.get(f"{base_url}{step.path}", timeout=30)
            response.content  # noqa: B018 - the body counts in the latency
            status: int | str = response.status_code
            ok = response.status_code < 400
        except requests.RequestException as exc:
            status, ok = type(exc).__name__, False
        recorder.add(Sample(step.label, time.perf_counter() - t0, ok, status))
        time.sleep(max(0.0, think_s * rng.uniform(0.8, 1.2)))


def _in_threads(target, argument_lists: Sequence[tuple], timeout_s: float) -> None:
    threads = [threading.Thread(target=target, args=args, daemon=True) for args in argument_lists]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=timeout_s)


def replay(
    base_url: str,
    users: Sequence[tuple[str, str]],
    steps: Sequence[Step],
    seconds: float,
    think_s: float = 1.0,
) -> Recorder:
    """Sign every user in (timed as "sign-in"), then let all of them replay ``steps`` in
    their own threads for ``seconds``; returns the samples."""
    recorder = Recorder()
    sessions: list[requests.Session | None] = [None] * len(users)

    def enter(i: int, name: str, password: str) -> None:
        try:
            sessions[i] = sign_in(base_url, name, password, recorder)
        except (requests.RequestException, RuntimeError) as exc:
            recorder.add(Sample("sign-in", 0.0, False, type(exc).__name__))

    _in_threads(enter, [(i, n, p) for i, (n, p) in enumerate(users)], 300)
    deadline = time.perf_counter() + seconds
    signed_in = [(s, i) for i, s in enumerate(sessions) if s is not None]
    _in_threads(
        run_user,
        [(s, base_url, steps, deadline, think_s, recorder, i) for s, i in signed_in],
        seconds + 120,
    )
    return recorder


def summarise(samples: Sequence[Sample]) -> dict:
    """Per label and overall: requests, errors, p50/p95/max latency in milliseconds."""

    def figures(rows: Sequence[Sample]) -> dict:
        ms = np.array([r.seconds * 1000.0 for r in rows if r.ok] or [np.nan])
        errors = [r for r in rows if not r.ok]
        return {
            "requests": len(rows),
            "errors": len(errors),
            "error_statuses": sorted({str(r.status) for r in errors}),
            "p50_ms": round(float(np.nanpercentile(ms, 50)), 1) if np.isfinite(ms).any() else None,
            "p95_ms": round(float(np.nanpercentile(ms, 95)), 1) if np.isfinite(ms).any() else None,
            "max_ms": round(float(np.nanmax(ms)), 1) if np.isfinite(ms).any() else None,
        }

    labels = sorted({s.label for s in samples})
    return {
        "overall": figures([s for s in samples if s.label != "sign-in"]),
        "by_request": {label: figures([s for s in samples if s.label == label]) for label in labels},
    }
