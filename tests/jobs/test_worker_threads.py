"""Each worker process limits torch to ``ORTHOFUSE_WORKER_TORCH_THREADS`` threads when it
starts (the ``worker_process_init`` hook of ``webapp.celery``); the default leaves the web
server a core."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
from celery.signals import worker_process_init

from webapp.celery import limit_torch_threads


@pytest.fixture
def torch_threads_restored():
    before = torch.get_num_threads()
    omp = os.environ.get("OMP_NUM_THREADS")
    yield
    torch.set_num_threads(before)
    if omp is None:
        os.environ.pop("OMP_NUM_THREADS", None)
    else:
        os.environ["OMP_NUM_THREADS"] = omp


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_the_process_init_signal_sets_torch_threads(settings, torch_threads_restored, threads):
    torch.set_num_threads(4)  # what an unlimited process on 4+ cores would use
    settings.ORTHOFUSE_WORKER_TORCH_THREADS = threads
    replies = dict(worker_process_init.send(sender=None))
    assert replies[limit_torch_threads] == threads
    assert torch.get_num_threads() == threads
    assert os.environ["OMP_NUM_THREADS"] == str(threads)


def test_below_one_is_taken_as_one(settings, torch_threads_restored, caplog):
    torch.set_num_threads(2)
    settings.ORTHOFUSE_WORKER_TORCH_THREADS = 0
    worker_process_init.send(sender=None)
    assert torch.get_num_threads() == 1
    assert "ORTHOFUSE_WORKER_TORCH_THREADS=0" in caplog.text


def _setting_in_fresh_process(value: str | None) -> int:
    env = {k: v for k, v in os.environ.items() if k != "ORTHOFUSE_WORKER_TORCH_THREADS"}
    if value is not None:
        env["ORTHOFUSE_WORKER_TORCH_THREADS"] = value
    code = "import webapp.settings as s; print(s.ORTHOFUSE_WORKER_TORCH_THREADS)"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True, timeout=120)
    return int(out.stdout.strip().splitlines()[-1])


def test_the_setting_defaults_to_all_cores_but_one_and_reads_the_variable():
    cores = len(os.sched_getaffinity(0))
    assert _setting_in_fresh_process(None) == (1 if cores <= 2 else cores - 1)
    assert _setting_in_fresh_process("3") == 3
