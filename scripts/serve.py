"""Serve the site (gunicorn, threaded, static files by WhiteNoise), a Celery worker niced
below it and the DICOM listener together; Ctrl-C stops them all cleanly.

Used by ``make run``. The worker listens on both queues so a single machine runs every
job; production runs GPU workers elsewhere (see README). The DICOM node takes its port,
AE title and address from ``ORTHOFUSE_DICOM_PORT`` / ``_AE_TITLE`` / ``_HOST`` (defaults
11112, ORTHOFUSE, 127.0.0.1); when it cannot start, the site keeps serving without it.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORKER_NICENESS = 19
# Idle keep-alive connections stay open this long: longer than a page's polling interval, so
# a client rarely sends on a connection the server is just closing (a reset at the client).
KEEP_ALIVE_S = 15


def _background_priority(nice: int) -> None:
    """Run the calling process (and what it starts) only on CPU time the site leaves: the
    idle scheduling class where Linux has it, ``nice``, and the same niceness for its
    session's autogroup, since Linux shares the CPU between autogroups (one per session)
    before niceness counts and a new session would otherwise get a full share."""
    os.nice(nice)
    try:
        Path("/proc/self/autogroup").write_text(f"{nice}\n")
    except OSError:  # no autogroup scheduling here: niceness alone applies
        pass
    if hasattr(os, "SCHED_IDLE"):
        try:
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
        except OSError:
            pass


def _start(command: list[str], env: dict, *, nice: int = 0) -> subprocess.Popen:
    return subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        start_new_session=True,
        preexec_fn=(lambda: _background_priority(nice)) if nice else None,  # noqa: PLW1509 - no threads yet
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", default="8000")
    parser.add_argument("--web-workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args()
    python = sys.executable
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    worker = _start(
        [python, "-m", "celery", "-A", "webapp", "worker", "-Q", "cpu,gpu", "-c", "1",
         "--loglevel", "INFO", "--max-tasks-per-child", "1", "-n", "orthofuse-local@%h"],
        env, nice=WORKER_NICENESS,
    )
    web = _start(
        [python, "-m", "gunicorn", "webapp.wsgi:application", "--bind",
         f"{args.host}:{args.port}", "--workers", str(args.web_workers), "--threads",
         str(args.threads), "--timeout", "120", "--keep-alive", str(KEEP_ALIVE_S),
         "--access-logfile", "-"],
        env,
    )
    listener = _start([python, "manage.py", "dicom_listener"], env)
    essential = (web, worker)
    print(
        f"OrthoFuse is serving http://{args.host}:{args.port}/ and DICOM "
        f"{env.get('ORTHOFUSE_DICOM_AE_TITLE') or 'ORTHOFUSE'} on port "
        f"{env.get('ORTHOFUSE_DICOM_PORT') or '11112'} (Ctrl-C stops)",
        flush=True,
    )
    stopping = False
    listener_reported = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        while not stopping and all(proc.poll() is None for proc in essential):
            if listener.poll() is not None and not listener_reported:
                print("the DICOM listener stopped (see above); the site keeps serving",
                      flush=True)
                listener_reported = True
            time.sleep(0.5)
    finally:
        procs = (web, worker, listener)
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.time() + 15
        for proc in procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        print("stopped web server, worker and DICOM listener", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
