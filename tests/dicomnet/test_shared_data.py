"""Every file of ../shared/data/dicom sent by C-STORE is stored or refused with a failure
status; no half-made study; the listener keeps running."""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.filereader import read_file_meta_info

from dicomio import load_ct
from tests.conftest import shared_path
from tests.dicomnet.conftest import wait_for
from tests.dicomnet.scu import echo, is_failure, store
from webapp.dicomnet.status import INTERNAL
from webapp.records.models import CTStudy, Patient, XrayImage


def _sendable(path: Path) -> str:
    """'' when the SCU can send the file as it is, else why not (no file meta to name it)."""
    try:
        meta = read_file_meta_info(path)
    except Exception as exc:  # noqa: BLE001
        return f"no readable file meta ({type(exc).__name__})"
    missing = [k for k in ("MediaStorageSOPClassUID", "MediaStorageSOPInstanceUID",
                           "TransferSyntaxUID") if not meta.get(k)]
    return f"file meta lacks {', '.join(missing)}" if missing else ""


def _series_uid(path: Path) -> str:
    ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
    return str(ds.get("SeriesInstanceUID", ""))


@pytest.mark.slow
def test_every_shared_file_is_stored_or_refused(node):
    root = shared_path("dicom")
    files = sorted(p for p in root.rglob("*") if p.is_file())
    unsendable = {p: why for p in files if (why := _sendable(p))}
    outcomes: dict[Path, tuple[int, str]] = {}
    started = time.monotonic()
    by_folder = defaultdict(list)
    for path in files:
        if path not in unsendable:
            by_folder[path.parent].append(path)
    for folder_files in by_folder.values():
        for path, outcome in zip(folder_files, store(node.port, folder_files), strict=True):
            outcomes[path] = outcome
        assert echo(node.port) == 0  # still running after each folder
    send_s = time.monotonic() - started
    for path, (status, comment) in outcomes.items():
        assert status == 0 or (is_failure(status) and comment), (path.name, hex(status))
    assert not [p for p, (s, _) in outcomes.items() if s == INTERNAL], "internal errors"
    stored = [p for p, (s, _) in outcomes.items() if s == 0]
    refused = [p for p, (s, _) in outcomes.items() if s != 0]
    assert stored and refused
    wait_for(lambda: not node.receiver.stager.pending(), timeout_s=120, period_s=0.5)
    wait_for(lambda: not any((Path(node.config.staging_dir) / ".importing").glob("*")),
             timeout_s=180, period_s=0.5)
    # Every stored CT series is one study of exactly its accepted files, with the geometry
    # the upload path gives the same files; X-rays are stored at once.
    accepted = defaultdict(list)
    for path in stored:
        accepted[_series_uid(path)].append(path)
    for study in CTStudy.objects.all():
        paths = accepted[study.series_instance_uid]
        assert study.provenance["file_count"] == len(paths)
        volume = load_ct(paths, series_uid=study.series_instance_uid)
        assert study.shape == list(volume.shape)
        np.testing.assert_allclose(study.affine_array, volume.affine, atol=1e-4)
    assert XrayImage.objects.count() <= len(stored)
    assert not Patient.objects.filter(ct_studies=None, xrays=None).exists()  # none half-made
    assert echo(node.port) == 0
    reasons = Counter(c.split(":")[0][:40] for s, c in outcomes.values() if s)
    print(f"\nrefusals: {dict(reasons)}; studies: "
          f"{[(s.description, s.shape) for s in CTStudy.objects.all()]}")
    print(f"{len(files)} files: {len(stored)} stored, {len(refused)} refused, "
          f"{len(unsendable)} not sendable by an SCU; {CTStudy.objects.count()} CT studies, "
          f"{XrayImage.objects.count()} X-rays; sending took {send_s:.1f} s")
