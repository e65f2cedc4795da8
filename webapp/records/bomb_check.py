"""Decompression bombs through the real import path, each in a fresh process
(``manage.py bench_import_bombs``).

Every bomb in :data:`BOMBS` is about 1-2 MB on disk and is built in seconds by
:mod:`dicomio.bombs`. :func:`run_bench` writes each one under a staging-style name
(``upload-00001.nii.gz``) and imports it in a child process with :func:`import_ct_study` or
:func:`import_xray`, the functions the cpu queue's ``import_ct`` / ``import_xray`` job
handlers call, and turns a refusal into the job's one-line message naming the user's file
(:func:`with_client_names`). The child measures the rise of its peak RSS over its RSS before
the import (VmHWM reset through ``/proc/self/clear_refs``) and the tracemalloc peak.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from dicomio.bombs import deflated_dicom_bomb, dicom_bomb, nifti_gz_bomb, png_bomb, zip_bomb

MIB = 2**20
PEAK_LIMIT_BYTES = 500 * 10**6  # what a refusal may take (issue #27)
REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Bomb:
    """One bomb: the upload form it goes to (``ct`` or ``xray``), the user's file name, what
    it is (for the table) and how to build its bytes."""

    name: str
    kind: str
    file_name: str
    what: str
    build: Callable[[], bytes]


BOMBS: tuple[Bomb, ...] = (
    Bomb("nifti_2e30_voxels", "ct", "bomb.nii.gz",
         "NIfTI of zeros holding all 2^30 int16 voxels it declares (10 GiB)",
         lambda: nifti_gz_bomb((1024, 1024, 1024))),
    Bomb("gzip_inflate_ratio", "ct", "ratio.nii.gz",
         "128^3 NIfTI whose gzip stream inflates 2 GiB past its volume",
         lambda: nifti_gz_bomb((128, 128, 128), extra_zeros=2**31)),
    Bomb("png_32768", "xray", "giant.png", "complete 32768 x 32768 16-bit PNG of zeros",
         lambda: png_bomb(32768, 32768)),
    Bomb("dicom_xray_rows_columns", "xray", "huge.dcm",
         "DICOM X-ray declaring 65535 x 65535 pixels, 2 MiB of pixel data",
         lambda: dicom_bomb(65535, 65535, modality="XA", payload=2 * MIB)),
    Bomb("dicom_ct_rows_columns", "ct", "huge.dcm",
         "DICOM CT declaring 65535 x 65535 pixels, 2 MiB of pixel data",
         lambda: dicom_bomb(65535, 65535, modality="CT", payload=2 * MIB)),
    Bomb("dicom_ct_payload", "ct", "forged.dcm",
         "DICOM CT declaring 20000 x 20000 (800 MB), 2 MiB of pixel data",
         lambda: dicom_bomb(20000, 20000, modality="CT", payload=2 * MIB)),
    Bomb("deflated_dicom_ct", "ct", "deflated.dcm",
         "deflated DICOM CT, 32768 x 32768 zeros: inflates to 2 GiB",
         lambda: deflated_dicom_bomb(32768, 32768, modality="CT")),
    Bomb("deflated_dicom_xray", "xray", "deflated.dcm",
         "deflated DICOM X-ray, 32768 x 32768 zeros: inflates to 2 GiB",
         lambda: deflated_dicom_bomb(32768, 32768, modality="XA")),
    Bomb("zip_2gib_member", "ct", "huge.zip", "zip holding one 2 GiB member of zeros",
         lambda: zip_bomb({"slice.dcm": (b"", 2 * 2**30)})),
    Bomb("zip_900mib_member", "ct", "big.zip", "zip holding one 900 MiB member of zeros",
         lambda: zip_bomb({"slice.dcm": (b"", 900 * MIB)})),
    Bomb("zip_1000_members", "ct", "many.zip", "zip of 1000 members of 1 MiB zeros (1 GiB)",
         lambda: zip_bomb({f"slice{i:04d}.dcm": (b"", MIB) for i in range(1000)})),
)


def bomb(name: str) -> Bomb:
    return next(b for b in BOMBS if b.name == name)


def staged_name(file_name: str) -> str:
    """The name the upload staging gives the user's file (``upload-00001`` + its suffix)."""
    lowered = file_name.lower()
    suffix = next((s for s in (".nii.gz", ".nii", ".zip", ".dcm", ".png") if lowered.endswith(s)), "")
    return "upload-00001" + suffix


# --------------------------------------------------------------------------- the child


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith(field + ":"))


def _import(kind: str, path: Path) -> None:
    """Import ``path`` as the job handler does (an unsaved patient: nothing is stored)."""
    from webapp.records.ct_import import import_ct_study
    from webapp.records.models import CArm, Patient
    from webapp.records.xray_import import import_xray

    patient = Patient(mrn="bomb-check")
    if kind == "ct":
        import_ct_study(path, patient)
    else:
        carm = CArm(name="bomb check", pixel_spacing_x_mm=0.2, pixel_spacing_y_mm=0.2,
                    source_to_detector_mm=1000.0)
        import_xray(path, patient, carm=carm)


def measure_here(kind: str, path: Path, client_name: str) -> dict:
    """Import ``path`` in this process; the refusal message as the job shows it, the peak RSS
    rise (VmHWM reset first), the tracemalloc peak (MiB) and the seconds taken."""
    import tracemalloc

    import cv2  # noqa: F401 - decoders loaded before the baseline
    import nibabel  # noqa: F401
    import pydicom  # noqa: F401

    from webapp.records.ct_import import ImportRefused
    from webapp.records.upload_staging import refusal_message, with_client_names

    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")  # the peak RSS starts again from the current RSS
    before_kb = _status_kb("VmRSS")
    tracemalloc.start()
    started = time.perf_counter()
    message, error = None, None
    try:
        _import(kind, path)
    except ImportRefused as exc:
        message = with_client_names(refusal_message(exc), [client_name])
    except Exception as exc:  # noqa: BLE001 - reported, never hidden
        error = f"{type(exc).__name__}: {str(exc)[:200]}"
    seconds = time.perf_counter() - started
    _size, traced = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {
        "refused": message is not None,
        "message": message or error or "imported",
        "peak_rss_mib": (_status_kb("VmHWM") - before_kb) / 1024,
        "tracemalloc_peak_mib": traced / MIB,
        "seconds": seconds,
    }


# --------------------------------------------------------------------------- the parent


def measure_in_fresh_process(kind: str, path: Path, client_name: str, media: Path) -> dict:
    """:func:`measure_here` in a new Python process (storage under ``media``)."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": os.environ.get("DJANGO_SETTINGS_MODULE", "webapp.settings"),
        "DJANGO_MEDIA_ROOT": str(media),
    }
    from django.conf import settings

    env["ORTHOFUSE_IMPORT_MAX_MEMORY_BYTES"] = str(settings.ORTHOFUSE_IMPORT_MAX_MEMORY_BYTES)
    env["ORTHOFUSE_MAX_UPLOAD_BYTES"] = str(settings.ORTHOFUSE_MAX_UPLOAD_BYTES)
    done = subprocess.run(
        [sys.executable, "-m", "webapp.records.bomb_check", kind, str(path), client_name],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600,
    )
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {"refused": False, "message": f"the import process failed: {tail[:200]}",
                "peak_rss_mib": None, "tracemalloc_peak_mib": None, "seconds": None}
    return json.loads(lines[-1])


def run_bench(names: list[str] | None = None, folder: Path | None = None) -> list[dict]:
    """Build and import every bomb (or those ``names``), each in a fresh process; one row
    per bomb: bomb, what, file, size_bytes, refused, message, peak_rss_mib,
    tracemalloc_peak_mib, seconds, ok (refused within :data:`PEAK_LIMIT_BYTES`)."""
    chosen = [bomb(n) for n in names] if names else list(BOMBS)
    rows = []
    with tempfile.TemporaryDirectory(prefix="orthofuse-bombs-", dir=folder) as tmp:
        for item in chosen:
            path = Path(tmp) / item.name / staged_name(item.file_name)
            path.parent.mkdir()
            path.write_bytes(item.build())
            row = {"bomb": item.name, "what": item.what, "file": item.file_name,
                   "size_bytes": path.stat().st_size}
            row.update(measure_in_fresh_process(item.kind, path, item.file_name, Path(tmp) / "media"))
            peak = row["peak_rss_mib"]
            row["ok"] = bool(row["refused"]) and peak is not None and peak * MIB < PEAK_LIMIT_BYTES
            path.unlink()
            rows.append(row)
    return rows


def format_table(rows: list[dict]) -> str:
    """The rows as a fixed-width text table (bomb, size, refused?, peak MiB, seconds,
    message)."""
    lines = [f"{'bomb':<24} {'size':>8} {'refused':>7} {'peak RSS':>9} {'tracemalloc':>11} "
             f"{'seconds':>7}  message"]
    def number(value, unit: str, width: int) -> str:
        return f"{'?':>{width}}{unit}" if value is None else f"{value:>{width}.1f}{unit}"

    for row in rows:
        seconds = "?" if row["seconds"] is None else f"{row['seconds']:.2f}"
        lines.append(
            f"{row['bomb']:<24} {row['size_bytes'] / 1e6:>6.2f}MB "
            f"{'yes' if row['refused'] else 'NO':>7} {number(row['peak_rss_mib'], 'MiB', 6)} "
            f"{number(row['tracemalloc_peak_mib'], 'MiB', 8)} {seconds:>7}  {row['message']}"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    import django

    django.setup()
    kind_arg, path_arg, client_arg = sys.argv[1:4]
    print(json.dumps(measure_here(kind_arg, Path(path_arg), client_arg)))
