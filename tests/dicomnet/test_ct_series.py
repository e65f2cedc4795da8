"""A CT series sent by C-STORE becomes one CT study once complete (quiet time or count)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest

from tests.dicomio.synth import write_series
from tests.dicomnet.conftest import CARE_TEAM, wait_for
from tests.dicomnet.scu import store
from webapp.records.models import CTStudy, Patient
from webapp.records.volume_store import load_study_volume


def _series(folder: Path, *, n: int = 8, seed: int = 0, mrn: str = "CT-7", **kw) -> list:
    rng = np.random.default_rng(seed)
    stored = rng.integers(0, 2000, (n, 32, 32)).astype(np.int16)
    positions = np.array([[-10.0, 20.0, 100.0 + 2.5 * k] for k in range(n)])
    paths = write_series(folder, stored, positions, spacing=(0.7, 0.8), patient_id=mrn, **kw)
    return [pydicom.dcmread(p) for p in paths], stored


def test_series_becomes_one_study_after_the_quiet_time(node, tmp_path):
    datasets, stored = _series(tmp_path / "in")
    first, rest = datasets[:3], datasets[3:]
    assert [s for s, _ in store(node.port, first)] == [0] * 3
    assert node.receiver.stager.pending() == {datasets[0].SeriesInstanceUID: 3}
    assert [s for s, _ in store(node.port, rest)] == [0] * 5
    assert CTStudy.objects.count() == 0  # not before the quiet time
    study = wait_for(lambda: CTStudy.objects.first())
    assert CTStudy.objects.count() == 1
    assert study.series_instance_uid == datasets[0].SeriesInstanceUID
    assert study.patient == Patient.objects.get(mrn="CT-7")
    assert [t.name for t in study.patient.care_teams.all()] == [CARE_TEAM]
    assert study.shape == [8, 32, 32]
    assert study.spacing_mm == pytest.approx([0.8, 0.7, 2.5])
    affine = np.asarray(study.affine)
    np.testing.assert_allclose(affine[:3, 3], [-10.0, 20.0, 100.0])
    np.testing.assert_allclose(np.diag(affine)[:3], [0.8, 0.7, 2.5])
    volume = load_study_volume(study)
    np.testing.assert_allclose(volume.array[0], stored[0].astype(np.float32) - 1024.0)
    wait_for(lambda: not node.receiver.stager.pending() and not any(
        (Path(node.config.staging_dir) / ".importing").glob("*")))


def test_series_completes_at_once_when_the_count_matches_the_header(make_node, tmp_path):
    node = make_node(quiet_s=30.0)
    datasets, _ = _series(tmp_path / "in", n=6, seed=1)
    for ds in datasets:
        ds.ImagesInAcquisition = 6
    assert [s for s, _ in store(node.port, datasets)] == [0] * 6
    study = wait_for(lambda: CTStudy.objects.first(), timeout_s=10)
    assert study.shape == [6, 32, 32]


def test_a_half_received_series_never_becomes_a_study(make_node, tmp_path):
    node = make_node(quiet_s=30.0)
    datasets, _ = _series(tmp_path / "in", n=8, seed=2)
    for ds in datasets:
        ds.ImagesInAcquisition = 8
    store(node.port, datasets[:5])
    assert node.finish_due_series() == []
    assert CTStudy.objects.count() == 0
    assert node.receiver.stager.pending() == {datasets[0].SeriesInstanceUID: 5}


def test_a_refused_series_is_audited_and_leaves_nothing(node, tmp_path):
    from webapp.core.models import AuditEvent

    datasets, _ = _series(tmp_path / "in", n=4, seed=3)
    datasets[2].ImagePositionPatient = datasets[1].ImagePositionPatient  # a duplicate position
    assert [s for s, _ in store(node.port, datasets)] == [0] * 4
    event = wait_for(lambda: AuditEvent.objects.filter(action="dicom_refused").first())
    assert datasets[0].SeriesInstanceUID in event.detail
    assert "duplicate slice positions" in event.detail
    assert CTStudy.objects.count() == 0
    assert not Patient.objects.filter(mrn="CT-7").exists()
    wait_for(lambda: not node.receiver.stager.pending())


def test_a_series_larger_than_the_upload_limit_is_refused_whole(node, tmp_path):
    from django.conf import settings

    from webapp.core.models import AuditEvent

    datasets, _ = _series(tmp_path / "in", n=4, seed=6)
    size = len(datasets[0].PixelData)
    node.receiver.stager.max_series_bytes = int(2.5 * (size + 2000))
    statuses = store(node.port, datasets)
    assert [s for s, _ in statuses[:2]] == [0, 0]
    assert statuses[3][0] == 0xC002 and "would exceed" in statuses[3][1]
    assert settings.ORTHOFUSE_MAX_UPLOAD_BYTES > node.receiver.stager.max_series_bytes
    wait_for(lambda: not node.receiver.stager.pending())
    wait_for(lambda: AuditEvent.objects.filter(detail__contains="exceeded the size limit").exists())
    assert CTStudy.objects.count() == 0  # the part that fitted is not a study either
    assert store(node.port, datasets[:1])[0][0] == 0xC002  # nor does it start again
