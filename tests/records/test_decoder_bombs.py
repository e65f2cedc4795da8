"""1-2 MB decompression bombs uploaded through the site are refused by the import job before any
decoder allocates: a .nii.gz of zeros holding all 2^30 int16 voxels it declares, a .nii.gz
whose gzip stream inflates ~500 times past the volume its header declares, a complete
32768 x 32768 16-bit PNG, DICOM files whose Rows/Columns claim far more than they hold,
deflated DICOM CT and X-ray that inflate to 2 GiB, and zip archives of zeros (one 2 GiB
member; one 900 MiB member; 1000 members of 1 MiB). The bombs are those of
``manage.py bench_import_bombs`` (:data:`webapp.records.bomb_check.BOMBS`).
Each job fails with a one-line message naming the user's file, stores nothing and removes its
staging; the memory the refusal takes is measured twice, as the tracemalloc peak of the whole
job and as the rise of the peak RSS (VmHWM, reset before the import) of a fresh process
running the same import, and must stay under 500 MB (printed: run with ``-s`` to read them)."""

from __future__ import annotations

import gzip
import re
import struct
import tracemalloc
from pathlib import Path

import cv2
import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from dicomio.bombs import gzip_zeros, png_bomb
from tests.core.factories import isolated_media, make_carm  # noqa: F401
from tests.records.jobflow import queued_job, run_job, staged_tokens
from webapp.records.bomb_check import (
    BOMBS,
    PEAK_LIMIT_BYTES,
    bomb,
    measure_in_fresh_process,
    staged_name,
)
from webapp.records.models import CTStudy, XrayImage

PEAK_LIMIT = PEAK_LIMIT_BYTES
MIB = 2**20
BOMB = r"refused as a decompression bomb \(real DICOM data compresses less than 200 times\)"

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
    "deflated_dicom_ct": (
        "ct",
        "deflated.dcm",
        r"'deflated\.dcm': the deflated dataset expands to more than 41\d\.\d MB from 2\.\d MB "
        rf"\(more than 200 times\): {BOMB}",
    ),
    "deflated_dicom_xray": (
        "xray",
        "deflated.dcm",
        r"'deflated\.dcm': the deflated dataset expands to more than 41\d\.\d MB from 2\.\d MB "
        rf"\(more than 200 times\): {BOMB}",
    ),
    "zip_2gib_member": (
        "ct",
        "huge.zip",
        r"'huge\.zip': the zip archive expands to 2\.1 GB, more than the limit of \d+\.\d GB",
    ),
    "zip_900mib_member": (
        "ct",
        "big.zip",
        rf"the zip archive 'big\.zip' expands to 943\.7 MB from 91\d\.\d kB \(10\d\d times\): {BOMB}",
    ),
    "zip_1000_members": (
        "ct",
        "many.zip",
        rf"the zip archive 'many\.zip' expands to 1\.0 GB from 1\.1 MB \(9\d\d times\): {BOMB}",
    ),
}


def test_the_table_covers_every_bomb_of_the_bench():
    assert list(CASES) == [item.name for item in BOMBS]
    assert all(CASES[item.name][:2] == (item.kind, item.file_name) for item in BOMBS)


@pytest.fixture(scope="module")
def bomb_files(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("bombs")
    paths = {}
    for case in CASES:
        (folder / case).mkdir()
        paths[case] = folder / case / CASES[case][1]
        paths[case].write_bytes(bomb(case).build())
    return paths


def test_the_bombs_are_small_and_real(bomb_files, tmp_path):
    for case, path in bomb_files.items():
        # 900 MiB of zeros deflate to 0.9 MB, 1000 members of 1 MiB to 1000 x 1.1 kB
        low = {"zip_900mib_member": 0.85, "zip_1000_members": 1.0}.get(case, 1.9)
        assert low * MIB < path.stat().st_size < 2.2 * MIB, path
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


def _measure(kind: str, path: Path, tmp_path: Path, name: str) -> tuple[str | None, int]:
    """Run one import of the staged file ``path`` in a fresh process (the bench's ruler):
    (refusal message as the job shows it, naming the user's file ``name``, or None; bytes
    its peak RSS rose above the RSS before the import)."""
    row = measure_in_fresh_process(kind, path, name, tmp_path / "media")
    assert row["peak_rss_mib"] is not None, row["message"]
    return (row["message"] if row["refused"] else None), int(row["peak_rss_mib"] * MIB)


def test_the_fresh_process_ruler_sees_a_real_import(tmp_path):
    """Control: loading a real 96 MB volume grows the process well past its baseline."""
    import nibabel as nib

    path = tmp_path / "real.nii"
    nib.save(nib.Nifti1Image(np.ones((384, 384, 320), np.int16), np.eye(4)), str(path))
    message, grown = _measure("ct", path, tmp_path, "real.nii")
    print(
        f"\ncontrol: loading a 384 x 384 x 320 int16 NIfTI grew the peak RSS by {grown / MIB:.0f} MiB"
    )
    assert message is None
    assert grown > 200 * MIB


@pytest.mark.parametrize("case", list(CASES))
def test_a_bomb_import_grows_a_fresh_process_by_little(bomb_files, tmp_path, case):
    kind, name, message = CASES[case]
    path = tmp_path / staged_name(name)
    path.write_bytes(bomb_files[case].read_bytes())
    refusal, grown = _measure(kind, path, tmp_path, name)
    print(f"\n{case}: fresh process peak RSS grew by {grown / MIB:.1f} MiB")
    assert refusal is not None, "the bomb was imported"
    assert re.fullmatch(message, refusal), refusal
    assert grown < PEAK_LIMIT, f"the refusal grew the process by {grown / MIB:.0f} MiB"
    assert not (tmp_path / "media").exists()
