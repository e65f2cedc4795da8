"""`make run` starts the worker with background priority (scripts/serve.py): niceness, the
same niceness for its autogroup (Linux shares CPU between autogroups before niceness
counts) and the idle scheduling class, so a training leaves the web server the CPU."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import os, sys
sys.path.insert(0, "scripts")
from serve import _background_priority
os.setsid()
_background_priority(19)
group = open("/proc/self/autogroup").read().split() if os.path.exists("/proc/self/autogroup") else []
print(os.nice(0), group[-1] if group else "-", os.sched_getscheduler(0))
"""


@pytest.mark.skipif(sys.platform != "linux", reason="Linux scheduling classes")
def test_the_worker_runs_with_background_priority():
    out = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    nice, autogroup_nice, policy = int(out[0]), out[1], int(out[2])
    assert nice == 19
    assert autogroup_nice in ("19", "-")  # "-": this kernel has no autogroups
    assert policy == os.SCHED_IDLE
