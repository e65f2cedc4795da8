"""pynetdicom's own ``storescu`` application (a separate process) sends a CT series folder."""

from __future__ import annotations

import subprocess
import sys

from tests.dicomnet.conftest import wait_for
from tests.dicomnet.test_ct_series import _series
from webapp.records.models import CTStudy


def test_storescu_sends_a_series_folder_that_becomes_one_study(node, tmp_path):
    datasets, _ = _series(tmp_path / "ct", n=6, seed=21, mrn="SCU-1")
    proc = subprocess.run(
        [sys.executable, "-m", "pynetdicom", "storescu", "127.0.0.1", str(node.port),
         str(tmp_path / "ct"), "-r", "-aet", "STORESCU", "-aec", "ORTHOFUSE"],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-500:]
    study = wait_for(lambda: CTStudy.objects.first())
    assert study.patient.mrn == "SCU-1" and study.shape == [6, 32, 32]
    assert study.series_instance_uid == datasets[0].SeriesInstanceUID
