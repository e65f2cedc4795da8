"""2 MB decompression bombs uploaded through the site are refused by the import job before any
decoder allocates: a .nii.gz of zeros holding all 2^30 int16 voxels it declares, a .nii.gz
whose gzip stream inflates ~500 times past the volume its header declares, a complete
32768 x 32768 16-bit PNG, and DICOM files whose Rows/Columns claim far more than they hold.
Each job fails with a one-line message naming the user's file, stores nothing and removes its
staging; the memory the refusal takes is measured twice, as the tracemalloc peak of the whole
job and as the rise of the peak RSS (VmHWM, reset before the import) of a fresh process
running the same import, and must stay under 500 MB (printed: run with ``-s`` to read them)."""

from __future__ import annotations

import gzip
import json
import os
import re
import struct
import subprocess
import sys
import tracemalloc
from pathlib import Path

import cv2
import numpy as np
import pytest
from django.conf import settings as django_settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from tests.core.factories import isolated_media, make_carm  # noqa: F401
from tests.records.bombs import dicom_bomb, gzip_zeros, nifti_gz_bomb, png_bomb
from tests.records.jobflow import queued_job, run_job, staged_tokens
from webapp.records.models import CTStudy, XrayImage

PEAK_LIMIT = 500 * 10**6  # bytes
REPO = Path(__file__).resolve().parents[2]
MIB = 2**20

# name: (upload form, file name, expected job error as a regular expression)
CASES = {
    "nifti_2e30_voxels": (
        "ct",
        "bomb.nii.gz",
        r"'bomb\.nii\.gz': its 1073741824 voxels need about 10\.0 GiB of memory to import, "
        r"more than the limit of \d+\.\d GiB",
    ),
    "gzip_inflate_ratio": (
        "ct",
        "ratio.nii.gz",
        r"'ratio\.nii\.gz': the compressed data does not hold the 4194656 bytes its header "
        r"declares \(truncated or forged header\)",
    ),
    "png_32768": (
        "xray",
        "giant.png",
        r"'giant\.png': the PNG declares 32768 x 32768 pixels, outside the limit of 81000000",
    ),
    "dicom_xray_rows_columns": (
        "xray",
        "huge.dcm",
        r"'huge\.dcm': the image declares 65535 x 65535 pixels per frame, more than any X-ray "
        r"detector \(81000000\)",
    ),
    "dicom_ct_rows_columns": (
        "ct",
        "huge.dcm",
        r"'huge\.dcm': the header declares 65535 x 65535 x 1 = 4294836225 voxels, more than the "
        r"limit of \d+",
    ),
    "dicom_ct_payload": (
        "ct",
        "forged.dcm",
        r"'forged\.dcm': pixel data is 2097152 bytes but the header declares 20000 x 20000 x 1 "
        r"at 16 bits = 800000000 bytes \(truncated file or forged header\)",
    ),
}


@pytest.fixture(scope="module")
def bomb_files(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("bombs")
    payloads = {
        "nifti_2e30_voxels": nifti_gz_bomb((1024, 1024, 1024)),
        "gzip_inflate_ratio": nifti_gz_bomb((128, 128, 128), extra_zeros=2**31),
        "png_32768": png_bomb(32768, 32768),
        "dicom_xray_rows_columns": dicom_bomb(65535, 65535, modality="XA", payload=2 * MIB),
        "dicom_ct_rows_columns": dicom_bomb(65535, 65535, modality="CT", payload=2 * MIB),
        "dicom_ct_payload": dicom_bomb(20000, 20000, modality="CT", payload=2 * MIB),
    }
    paths = {}
    for case, data in payloads.items():
        (folder / case).mkdir()
        paths[case] = folder / case / CASES[case][1]
        paths[case].write_bytes(data)
    return paths


def test_the_bombs_are_small_and_real(bomb_files, tmp_path):
    for path in bomb_files.values():
        assert 1.9 * MIB < path.stat().st_size < 2.2 * MIB, path
    # the NIfTI bomb really holds its 2 GiB: the gzip trailer counts header + every voxel
    data = bomb_files["nifti_2e30_voxels"].read_bytes()
    assert struct.unpack("<I", data[-4:])[0] == (352 + 2 * 2**30) % 2**32
    with gzip.open(bomb_files["nifti_2e30_voxels"]) as stream:
        head = stream.read(352 + 4 * MIB)
    assert head[352:] == bytes(4 * MIB)
    ratio = bomb_files["gzip_inflate_ratio"]
    assert struct.unpack("<I", ratio.read_bytes()[-4:])[0] == (352 + 128**3 * 2 + 2**31) % 2**32
    # the builders make valid files: small versions decode to what they declare
    assert gzip.decompress(gzip_zeros(b"head", 5 * 1000 + 7, block=1000)) == b"head" + bytes(5007)
    small = cv2.imdecode(np.frombuffer(png_bomb(64, 32), np.uint8), cv2.IMREAD_UNCHANGED)
    assert small.shape == (32, 64) and small.dtype == np.uint16 and not small.any()


def _upload(client, patient, kind: str, path: Path):
    upload = SimpleUploadedFile(path.name, path.read_bytes())
    if kind == "ct":
        url = reverse("records:ct-upload", kwargs={"pk": patient.pk})
        return client.post(url, {"files": upload})
    carm = make_carm(pixel_spacing_x_mm=0.2, pixel_spacing_y_mm=0.2, source_to_detector_mm=1000)
    url = reverse("records:xray-upload", kwargs={"pk": patient.pk})
    return client.post(url, {"file": upload, "carm": carm.pk})


@pytest.mark.django_db
@pytest.mark.parametrize("case", list(CASES))
def test_a_bomb_upload_fails_its_job_with_little_memory(
    client, surgeon_a, patient_a, settings, bomb_files, case
):
    kind, _name, message = CASES[case]
    client.force_login(surgeon_a)
    job = queued_job(_upload(client, patient_a, kind, bomb_files[case]))
    tracemalloc.start()
    try:
        run_job(job, "failed")
        _size, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    print(f"\n{case}: import job tracemalloc peak {peak / MIB:.1f} MiB")
    assert re.fullmatch(message, job.error), job.error
    assert peak < PEAK_LIMIT, f"the refused job took {peak / MIB:.0f} MiB"
    assert not CTStudy.objects.exists() and not XrayImage.objects.exists()
    media = Path(settings.MEDIA_ROOT)
    assert not [p for p in media.rglob("*") if p.is_file()], "a file was left in storage"
    assert staged_tokens() == []


_MEASURE = """
import json, sys
import django
django.setup()
import cv2, nibabel, pydicom  # noqa: F401 - loaded before the baseline
from webapp.records.ct_import import ImportRefused, import_ct_study
from webapp.records.models import CArm, Patient
from webapp.records.xray_import import import_xray


def status_kb(field):
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith(field + ":"))


kind, path = sys.argv[1:3]
# the peak RSS (VmHWM) starts again from the current RSS: what the import adds is measured,
# not the startup's or the parent's peak
with open("/proc/self/clear_refs", "w") as fh:
    fh.write("5")
before = status_kb("VmRSS")
try:
    if kind == "control":
        from dicomio import load_ct

        load_ct(path)
    elif kind == "ct":
        import_ct_study(path, Patient(mrn="memory-check"))
    else:
        carm = CArm(name="c", pixel_spacing_x_mm=0.2, pixel_spacing_y_mm=0.2,
                    source_to_detector_mm=1000.0)
        import_xray(path, Patient(mrn="memory-check"), carm=carm)
    message = None
except ImportRefused as exc:
    message = exc.message
print(json.dumps({"message": message, "before_kb": before, "after_kb": status_kb("VmHWM")}))
"""


def _measure(kind: str, path: Path, tmp_path: Path) -> tuple[str | None, int]:
    """Run one import in a fresh process: (refusal message or None, bytes its peak RSS rose
    above the RSS before the import)."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "webapp.settings",
        "DJANGO_MEDIA_ROOT": str(tmp_path / "media"),
        "ORTHOFUSE_IMPORT_MAX_MEMORY_BYTES": str(django_settings.ORTHOFUSE_IMPORT_MAX_MEMORY_BYTES),
    }
    done = subprocess.run(
        [sys.executable, "-c", _MEASURE, kind, str(path)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    return report["message"], (report["after_kb"] - report["before_kb"]) * 1024


def test_the_fresh_process_ruler_sees_a_real_import(tmp_path):
    """Control: loading a real 96 MB volume grows the process well past its baseline."""
    import nibabel as nib

    path = tmp_path / "real.nii"
    nib.save(nib.Nifti1Image(np.ones((384, 384, 320), np.int16), np.eye(4)), str(path))
    message, grown = _measure("control", path, tmp_path)
    print(
        f"\ncontrol: loading a 384 x 384 x 320 int16 NIfTI grew the peak RSS by {grown / MIB:.0f} MiB"
    )
    assert message is None
    assert grown > 200 * MIB


@pytest.mark.parametrize("case", list(CASES))
def test_a_bomb_import_grows_a_fresh_process_by_little(bomb_files, tmp_path, case):
    kind, name, message = CASES[case]
    path = tmp_path / ("upload-00001" + "".join(Path(name).suffixes))
    path.write_bytes(bomb_files[case].read_bytes())
    refusal, grown = _measure(kind, path, tmp_path)
    print(f"\n{case}: fresh process peak RSS grew by {grown / MIB:.1f} MiB")
    assert refusal is not None, "the bomb was imported"
    expected = message.replace(re.escape(f"'{name}'"), re.escape(path.name))
    assert re.fullmatch(expected, refusal), refusal
    assert grown < PEAK_LIMIT, f"the refusal grew the process by {grown / MIB:.0f} MiB"
    assert not (tmp_path / "media").exists()
