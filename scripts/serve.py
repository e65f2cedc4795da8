"""Serve the site and a Celery worker together; Ctrl-C stops both cleanly.

Used by ``make run``. The worker listens on both queues so a single machine runs
every job; production runs GPU workers elsewhere (see README).
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", default="8000")
    args = parser.parse_args()
    python = sys.executable
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    worker = subprocess.Popen(
        [python, "-m", "celery", "-A", "webapp", "worker", "-Q", "cpu,gpu", "-c", "1",
         "--loglevel", "INFO", "--max-tasks-per-child", "1", "-n", "orthofuse-local@%h"],
        cwd=ROOT, env=env, start_new_session=True,
    )
    web = subprocess.Popen(
        [python, "manage.py", "runserver", "--noreload", f"{args.host}:{args.port}"],
        cwd=ROOT, env=env, start_new_session=True,
    )
    print(f"OrthoFuse is serving http://{args.host}:{args.port}/ (Ctrl-C stops)", flush=True)
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        while not stopping and web.poll() is None and worker.poll() is None:
            time.sleep(0.5)
    finally:
        for proc in (web, worker):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.time() + 15
        for proc in (web, worker):
            try:
                proc.wait(timeout=max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        print("stopped web server and worker", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
