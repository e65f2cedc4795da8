"""Staging received CT instances on disk, one folder per series, until the series is complete.

Layout under the staging root (``ORTHOFUSE_DICOM_STAGING_DIR``, in the var dir)::

    <SeriesInstanceUID>/series.json          patient MRN, calling AE, expected count
    <SeriesInstanceUID>/<SOPInstanceUID>.dcm one file per received instance (atomic rename)
    .importing/<SeriesInstanceUID>-<token>/  a complete series while it is being imported

A series is complete when no instance arrived for ``quiet_s`` seconds (file times, so a
restarted listener finds the series it had left) and no association that sent part of it is
still open, or at once when the number of instances equals ImagesInAcquisition and every
instance says so. A series whose sending association was aborted is marked ``interrupted``
(a normal release of a later association that resends it clears the mark); the importer
refuses it. Taking a series moves its folder away first: an instance arriving during the
import starts a new folder, never joins a study being made.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from pydicom.dataset import Dataset

from webapp.dicomnet.instance import checked_uid, patient_id
from webapp.dicomnet.status import IDENTIFIERS, PIXELS_REFUSED, StoreRefused

MANIFEST = "series.json"
IMPORTING = ".importing"
INCOMING = ".incoming"
REFUSED_MEMORY_S = 3600.0  # later instances of a series refused as too big are refused too


@dataclass
class StagedSeries:
    """A complete series taken for import: its folder, files and manifest."""

    series_uid: str
    folder: Path
    files: list[Path]
    manifest: dict


def _expected(ds: Dataset) -> int | None:
    try:
        value = int(ds.get("ImagesInAcquisition") or 0)
    except (TypeError, ValueError):
        return None
    return value if value > 0 else None


class SeriesStager:
    """Thread-safe staging of CT instances (associations run in their own threads)."""

    def __init__(self, root: Path, max_series_bytes: int | None = None) -> None:
        self.root = Path(root)
        self.max_series_bytes = max_series_bytes
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._too_big: dict[str, float] = {}  # series refused whole: uid -> when
        self._open: dict[str, int] = {}  # series -> associations sending it, still open

    @property
    def work_dir(self) -> Path:
        """Scratch space for other receivers (same file system as the staging root)."""
        return self.root / INCOMING

    def stage(self, ds: Dataset, raw: bytes, calling_ae: str) -> int:
        """Keep one instance; returns how many instances its series now holds."""
        series_uid = checked_uid(ds, "SeriesInstanceUID")
        sop_uid = checked_uid(ds, "SOPInstanceUID")
        mrn = patient_id(ds)
        with self._lock:
            if time.time() - self._too_big.get(series_uid, -REFUSED_MEMORY_S) < REFUSED_MEMORY_S:
                raise StoreRefused(PIXELS_REFUSED, f"series {series_uid[-12:]} was refused as too big")
            folder = self.root / series_uid
            folder.mkdir(parents=True, exist_ok=True)
            manifest_path = folder / MANIFEST
            manifest = self._manifest(folder)
            if manifest is None:
                manifest = {"series_uid": series_uid, "mrn": mrn, "calling_ae": calling_ae,
                            "expected": _expected(ds), "expected_agrees": True}
            elif manifest["mrn"] != mrn:
                raise StoreRefused(
                    IDENTIFIERS,
                    f"series {series_uid[-12:]} belongs to another PatientID than {mrn}",
                )
            if _expected(ds) != manifest.get("expected"):
                manifest["expected_agrees"] = False
            total = int(manifest.get("bytes", 0)) + len(raw)
            too_big = self.max_series_bytes is not None and total > self.max_series_bytes
            if too_big or manifest.get("too_big"):
                # the whole series is refused then: what it had staged never becomes a study
                manifest["too_big"] = True
                self._too_big[series_uid] = time.time()
                self._write_atomic(manifest_path, json.dumps(manifest).encode())
                raise StoreRefused(
                    PIXELS_REFUSED,
                    f"series {series_uid[-12:]} would exceed {self.max_series_bytes} bytes",
                )
            manifest["bytes"] = total
            self._write_atomic(manifest_path, json.dumps(manifest).encode())
            self._write_atomic(folder / f"{sop_uid}.dcm", raw)
            return len(list(folder.glob("*.dcm")))

    def due(self, quiet_s: float, now: float | None = None) -> list[str]:
        """Series UIDs that are complete (quiet for ``quiet_s`` s, or counted complete)."""
        now = time.time() if now is None else now
        out = []
        with self._lock:
            for folder in sorted(self.root.iterdir()):
                if folder.name.startswith(".") or not folder.is_dir():
                    continue
                files = list(folder.glob("*.dcm"))
                manifest = self._manifest(folder)
                if not files or manifest is None:
                    if now - folder.stat().st_mtime > quiet_s:
                        shutil.rmtree(folder, ignore_errors=True)  # a refused first instance
                    continue
                last = max(p.stat().st_mtime for p in files)
                expected = manifest.get("expected") if manifest.get("expected_agrees") else None
                quiet = now - last >= quiet_s and not self._open.get(folder.name)
                if quiet or (expected and len(files) == expected):
                    out.append(folder.name)
        return out

    def opened(self, series_uid: str) -> None:
        """An association has started sending this series (it is not complete while open)."""
        with self._lock:
            self._open[series_uid] = self._open.get(series_uid, 0) + 1

    def closed(self, series_uid: str, *, aborted: bool) -> None:
        """An association that sent part of this series ended: released, or ``aborted``."""
        with self._lock:
            left = self._open.get(series_uid, 0) - 1
            if left > 0:
                self._open[series_uid] = left
            else:
                self._open.pop(series_uid, None)
            folder = self.root / series_uid
            manifest = self._manifest(folder)
            if manifest is not None and manifest.get("interrupted", False) != aborted:
                manifest["interrupted"] = aborted
                self._write_atomic(folder / MANIFEST, json.dumps(manifest).encode())

    def take(self, series_uid: str) -> StagedSeries | None:
        """Move a series out of the receiving area for import (None if it is gone)."""
        with self._lock:
            folder = self.root / series_uid
            manifest = self._manifest(folder)
            if manifest is None:
                return None
            target = self.root / IMPORTING / f"{series_uid}-{uuid.uuid4().hex[:8]}"
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(folder, target)
        files = sorted(target.glob("*.dcm"))
        return StagedSeries(series_uid, target, files, manifest)

    def recover(self) -> int:
        """At start: series left mid-import by a stopped listener go back to the receiving
        area (to be imported again). Returns how many."""
        count = 0
        importing = self.root / IMPORTING
        if not importing.is_dir():
            return 0
        with self._lock:
            for folder in importing.iterdir():
                uid = folder.name.rsplit("-", 1)[0]
                if (self.root / uid).exists():
                    shutil.rmtree(folder, ignore_errors=True)
                else:
                    os.replace(folder, self.root / uid)
                    count += 1
        return count

    def pending(self) -> dict[str, int]:
        """Series being received: ``{series_uid: instances so far}``."""
        with self._lock:
            return {
                f.name: len(list(f.glob("*.dcm")))
                for f in self.root.iterdir()
                if f.is_dir() and not f.name.startswith(".")
            }

    @staticmethod
    def done(staged: StagedSeries) -> None:
        """Remove a taken series' files (after its import succeeded or was refused)."""
        shutil.rmtree(staged.folder, ignore_errors=True)

    @staticmethod
    def _manifest(folder: Path) -> dict | None:
        try:
            return json.loads((folder / MANIFEST).read_text())
        except (OSError, ValueError):
            return None

    @staticmethod
    def _write_atomic(path: Path, data: bytes) -> None:
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)

