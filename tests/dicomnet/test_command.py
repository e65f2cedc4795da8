"""``manage.py dicom_listener`` as a process: arguments, receiving, and SIGTERM/SIGINT stop."""

from __future__ import annotations

import os
import queue
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from tests.database_url import subprocess_database_url
from tests.dicomio.synth import xray_dataset
from tests.dicomnet.conftest import wait_for
from tests.dicomnet.scu import echo, store

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _env(tmp_path: Path) -> dict:
    return {
        **os.environ,
        "DJANGO_DEBUG": "1",
        "DATABASE_URL": subprocess_database_url(),
        "DJANGO_MEDIA_ROOT": str(tmp_path / "media"),
        "ORTHOFUSE_DICOM_STAGING_DIR": str(tmp_path / "staging"),
        "ORTHOFUSE_DICOM_CARE_TEAM": "Command team",
        "PYTHONUNBUFFERED": "1",
    }


def _lines(proc: subprocess.Popen) -> queue.Queue:
    out: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [out.put(line) for line in proc.stdout], daemon=True).start()
    return out


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--port", "abc"], "--port 'abc' is not a number"),
     (["--port", "70000"], "not between 1 and 65535"),
     (["--ae-title", "A" * 17], "1 to 16 ASCII characters")],
)
def test_bad_arguments_are_refused(args, message, node_settings):
    from django.core.management import CommandError, call_command

    with pytest.raises(CommandError, match=message.replace("(", r"\(")):
        call_command("dicom_listener", *args)


def test_a_port_in_use_is_refused_in_one_line(node_settings):
    from django.core.management import CommandError, call_command

    before = signal.getsignal(signal.SIGINT)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(CommandError, match=f"cannot listen on 127.0.0.1:{port}"):
            call_command("dicom_listener", "--port", str(port))
    assert signal.getsignal(signal.SIGINT) is before  # the command put the handler back


def test_a_bad_argument_is_one_line_on_stderr(tmp_path, transactional_db):
    proc = subprocess.run(
        [sys.executable, "manage.py", "dicom_listener", "--port", "abc"],
        cwd=ROOT, env=_env(tmp_path), capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode != 0
    assert proc.stderr.strip() == "CommandError: --port 'abc' is not a number"


@pytest.mark.parametrize("sig", [signal.SIGTERM, pytest.param(signal.SIGINT, marks=pytest.mark.slow)])
def test_command_receives_and_stops_on_a_signal(sig, tmp_path, transactional_db):
    from webapp.records.models import Patient, XrayImage

    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "dicom_listener", "--port", str(port), "--ae-title", "ORNODE"],
        cwd=ROOT, env=_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        first = _lines(proc).get(timeout=60)
        assert f"DICOM listener ORNODE on 127.0.0.1:{port}" in first
        assert echo(port, called_ae="ORNODE") == 0
        ds = xray_dataset(np.random.default_rng(0).integers(0, 4000, (16, 16)).astype(np.uint16))
        ds.PatientID = "CMD-1"
        assert store(port, [ds], called_ae="ORNODE") == [(0, "")]
        xray = wait_for(lambda: XrayImage.objects.filter(patient__mrn="CMD-1").first())
        assert xray.sop_instance_uid == ds.SOPInstanceUID
        assert list(Patient.objects.get(mrn="CMD-1").care_teams.values_list("name", flat=True)) \
            == ["Command team"]
        proc.send_signal(sig)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert echo(port) is None  # no longer listening
