"""Upload safety: size limits, zip bombs and unsafe member names, forged pixel headers refused
before decoding, server-made storage names outside the static path."""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

import numpy as np
import pytest
from django.conf import settings as django_settings
from pydicom.encaps import encapsulate
from pydicom.uid import JPEG2000Lossless, generate_uid

from dicomio import InputRefused, load_ct
from dicomio.sources import collect_sources
from tests.dicomio.synth import ct_slice, write_series
from webapp.records.ct_import import ImportRefused, import_ct_study
from webapp.records.models import CTStudy


@pytest.fixture(autouse=True)
def media_root(tmp_path, settings):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    }
    return settings.MEDIA_ROOT


@pytest.fixture
def no_decoding(monkeypatch):
    """Fail the test if any pixel data is decoded."""

    def forbidden(*args, **kwargs):
        raise AssertionError("pixel data was decoded before the header was checked")

    monkeypatch.setattr("dicomio.series.decode_frames", forbidden)


def _forged_series(folder: Path, *, rows: int, cols: int, compressed: bool) -> None:
    folder.mkdir(parents=True)
    series, study = generate_uid(), generate_uid()
    for k in range(2):
        ds = ct_slice(
            np.zeros((2, 2), np.int16),
            position=(0, 0, 2.0 * k),
            series_uid=series,
            study_uid=study,
            instance=k + 1,
        )
        ds.Rows, ds.Columns = rows, cols
        if compressed:
            ds.file_meta.TransferSyntaxUID = JPEG2000Lossless
            ds.PixelData = encapsulate([b"\xff\x4f\xff\x51" + b"\0" * 60])
            ds["PixelData"].VR = "OB"
        else:
            ds.PixelData = b"\0" * 128
        ds.save_as(folder / f"{k}.dcm", enforce_file_format=True)


def test_huge_declared_matrix_with_tiny_native_payload_is_refused_before_decoding(
    tmp_path, no_decoding
):
    # 20000 x 20000 fits the import memory budget, so the payload check is what refuses it
    _forged_series(tmp_path / "forged", rows=20000, cols=20000, compressed=False)
    with pytest.raises(InputRefused) as err:
        load_ct(tmp_path / "forged")
    assert "pixel data is 128 bytes but the header declares 20000 x 20000" in err.value.message


def test_huge_declared_matrix_with_tiny_compressed_payload_is_refused_before_decoding(
    tmp_path, no_decoding
):
    _forged_series(tmp_path / "forged", rows=20000, cols=20000, compressed=True)
    with pytest.raises(InputRefused) as err:
        load_ct(tmp_path / "forged")
    assert "claims to expand to 800000000 bytes" in err.value.message


def test_max_voxels_setting_is_enforced(db, tmp_path, patient_a, settings, no_decoding):
    stored = np.zeros((3, 20, 20), np.int16)
    write_series(tmp_path / "s", stored, np.array([[0, 0, z] for z in (0.0, 1.0, 2.0)]))
    settings.ORTHOFUSE_MAX_VOXELS = 1000
    with pytest.raises(ImportRefused) as err:
        import_ct_study(tmp_path / "s", patient_a)
    assert "more than the limit of 1000" in err.value.message
    assert CTStudy.objects.count() == 0


def test_upload_size_limit(db, tmp_path, patient_a, settings):
    stored = np.zeros((3, 32, 32), np.int16)
    write_series(tmp_path / "s", stored, np.array([[0, 0, z] for z in (0.0, 1.0, 2.0)]))
    settings.ORTHOFUSE_MAX_UPLOAD_BYTES = 4000
    with pytest.raises(ImportRefused) as err:
        import_ct_study(tmp_path / "s", patient_a)
    total = sum(p.stat().st_size for p in (tmp_path / "s").iterdir())
    assert err.value.message == f"the input is {total / 1e3:.1f} kB, more than the limit of 4.0 kB"
    assert CTStudy.objects.count() == 0


def test_zip_bomb_is_bounded_by_total_uncompressed_size(db, tmp_path, patient_a, settings):
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for i in range(4):
            zf.writestr(f"slice{i}.dcm", b"\0" * (8 * 1024 * 1024))
    assert bomb.stat().st_size < 200_000
    settings.ORTHOFUSE_MAX_UPLOAD_BYTES = 10 * 1024 * 1024
    with pytest.raises(ImportRefused) as err:
        import_ct_study(bomb, patient_a)
    assert "zip archive expands to 33.6 MB, more than the limit of 10.5 MB" in err.value.message


def test_zip_member_names_are_never_used_as_paths(tmp_path):
    rng = np.random.default_rng(2)
    stored = rng.integers(0, 50, size=(3, 4, 4)).astype(np.int16)
    paths = write_series(tmp_path / "s", stored, np.array([[0, 0, z] for z in (0.0, 1.0, 2.0)]))
    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(paths[0], arcname="ok/a.dcm")
        zf.write(paths[1], arcname="..\\..\\windows.dcm")
        zf.write(paths[2], arcname="C:/drive.dcm")
        zf.writestr("../../../../tmp/escape.dcm", paths[2].read_bytes())
    sources = collect_sources(archive, max_bytes=10**7, max_files=100)
    assert [f.name for f in sources.files] == ["zip member #1 (a.dcm)"]
    assert len([s for s in sources.skipped if "unsafe name" in s]) == 3
    assert all(f.path is None for f in sources.files)  # read in memory, nothing extracted


def test_file_disguised_as_dicom_is_refused(db, tmp_path, patient_a):
    fake = tmp_path / "scan.dcm"
    fake.write_bytes(b"MZ\x90\x00" + bytes(range(256)) * 4)
    with pytest.raises(ImportRefused) as err:
        import_ct_study(fake, patient_a)
    assert err.value.message == "scan.dcm is not a DICOM or NIfTI file"


def test_stored_volume_uses_server_name_outside_static(db, tmp_path, patient_a, media_root):
    rng = np.random.default_rng(4)
    stored = rng.integers(0, 50, size=(3, 4, 4)).astype(np.int16)
    evil = tmp_path / "..evil name;rm -rf"
    write_series(evil, stored, np.array([[0, 0, z] for z in (0.0, 1.0, 2.0)]))
    study = import_ct_study(evil, patient_a)
    assert re.fullmatch(r"volumes/[0-9a-f]{32}\.npy", study.volume_file.name)
    stored_path = Path(study.volume_file.path).resolve()
    assert stored_path.is_relative_to(Path(media_root).resolve())
    static_root = getattr(django_settings, "STATIC_ROOT", None)
    if static_root:
        assert not stored_path.is_relative_to(Path(static_root).resolve())


def test_deflate_bomb_is_refused_before_pydicom_inflates_it(tmp_path):
    from pydicom.uid import DeflatedExplicitVRLittleEndian

    folder = tmp_path / "dfl"
    folder.mkdir()
    for k in range(2):
        ds = ct_slice(
            np.zeros((512, 512), np.int16),
            position=(0, 0, float(k)),
            series_uid="1.2.3",
            study_uid="1.2.4",
            instance=k + 1,
        )
        ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
        ds.save_as(folder / f"{k}.dcm", enforce_file_format=True)
    assert all(p.stat().st_size < 5000 for p in folder.iterdir())
    assert load_ct(folder).shape == (2, 512, 512)  # fine within the default limit
    with pytest.raises(InputRefused) as err:
        load_ct(folder, max_bytes=100_000)
    assert "deflated dataset expands to more than the limit of 100000 bytes" in err.value.message
