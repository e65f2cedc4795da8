"""CT import service and ``import_ct`` command: stored volume, fields, atomicity, audit."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
from django.core.files.storage import default_storage
from django.core.management import call_command
from django.core.management.base import CommandError

from dicomio import load_ct
from tests.conftest import shared_path
from tests.dicomio.synth import write_series
from webapp.core.models import AuditEvent
from webapp.records.ct_import import ImportRefused, MultipleSeries, import_ct_study
from webapp.records.models import CTStudy, Patient
from webapp.records.volume_store import load_study_volume, read_slice


@pytest.fixture(autouse=True)
def media_root(tmp_path, settings):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    }
    return settings.MEDIA_ROOT


def _stored_files(root) -> list:
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def _series(tmp_path, name="s", n=5, seed=0, **kwargs):
    rng = np.random.default_rng(seed)
    stored = rng.integers(0, 2000, size=(n, 6, 7)).astype(np.int16)
    pos = np.array([[-10.0, -20.0, 30.0 + 2.5 * k] for k in range(n)])
    write_series(tmp_path / name, stored, pos, spacing=(0.8, 0.9), **kwargs)
    return tmp_path / name, stored


def test_import_fills_every_field_and_stores_int16(db, tmp_path, patient_a, surgeon_a, media_root):
    folder, stored = _series(tmp_path)
    study = import_ct_study(folder, patient_a, user=surgeon_a, description="pre-op")
    study.refresh_from_db()
    assert study.status == CTStudy.Status.READY
    assert study.description == "pre-op"
    assert study.shape == [5, 6, 7]
    np.testing.assert_allclose(study.spacing_mm, [0.9, 0.8, 2.5], atol=1e-6)
    np.testing.assert_allclose(np.array(study.affine)[:3, 3], [-10, -20, 30], atol=1e-6)
    assert study.study_instance_uid and study.series_instance_uid
    assert str(study.study_date) == "2024-01-02"
    assert study.modality == "CT"
    hu = stored.astype(np.float32) - 1024
    assert study.hu_min == pytest.approx(hu.min()) and study.hu_max == pytest.approx(hu.max())
    prov = study.provenance
    assert prov["source_kind"] == "folder" and prov["file_count"] == 5
    assert prov["transfer_syntaxes"] == ["1.2.840.10008.1.2.1"]
    assert prov["resampled"] is False and prov["deidentified"] is False
    assert "orthofuse" in prov["software"]
    assert study.created_by == surgeon_a
    # stored outside the static path, under a server-made name, via default storage
    assert study.volume_file.name.startswith("volumes/") and study.volume_file.name.endswith(".npy")
    assert default_storage.exists(study.volume_file.name)
    raw = np.load(default_storage.path(study.volume_file.name))
    assert raw.dtype == np.int16
    vol = load_study_volume(study)
    np.testing.assert_array_equal(vol.array, hu)
    np.testing.assert_allclose(vol.affine, study.affine_array)
    np.testing.assert_array_equal(read_slice(study, 0, 3), hu[3].astype(np.int16))
    np.testing.assert_array_equal(read_slice(study, 2, 6), hu[:, :, 6].astype(np.int16))
    event = AuditEvent.objects.get(object_type="CTStudy", object_id=str(study.pk))
    assert event.action == "create" and event.patient_mrn == patient_a.mrn
    assert event.user == surgeon_a


def test_refusal_leaves_no_study_and_no_file(db, tmp_path, patient_a, media_root):
    rng = np.random.default_rng(1)
    stored = rng.integers(0, 100, size=(4, 5, 5)).astype(np.int16)
    pos = np.array([[0, 0, z] for z in (0.0, 1.0, 2.0, 4.0)])
    write_series(tmp_path / "gap", stored, pos)
    with pytest.raises(ImportRefused) as err:
        import_ct_study(tmp_path / "gap", patient_a)
    assert "slice spacing varies from 1.00 to 2.00 mm between slices 3 and 4" in err.value.message
    assert isinstance(err.value, ValueError)
    assert CTStudy.objects.count() == 0
    assert _stored_files(media_root) == []


def test_failure_after_storing_removes_the_file(db, tmp_path, patient_a, media_root, monkeypatch):
    folder, _ = _series(tmp_path)

    def broken(*args, **kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr("webapp.core.audit.record", broken)
    with pytest.raises(RuntimeError):
        import_ct_study(folder, patient_a)
    assert CTStudy.objects.count() == 0
    assert _stored_files(media_root) == []


def test_multiple_series_lists_them_and_series_uid_selects(db, tmp_path, patient_a):
    _series(tmp_path / "mix", name="a", n=3, series_uid="1.2.3.1")
    _series(tmp_path / "mix", name="b", n=4, series_uid="1.2.3.2", seed=5)
    with pytest.raises(MultipleSeries) as err:
        import_ct_study(tmp_path / "mix", patient_a)
    series = {s["series_uid"]: s for s in err.value.series}
    assert set(series) == {"1.2.3.1", "1.2.3.2"}
    assert series["1.2.3.2"]["n_slices"] == 4 and series["1.2.3.1"]["modality"] == "CT"
    assert "description" in series["1.2.3.1"]
    assert CTStudy.objects.count() == 0
    study = import_ct_study(tmp_path / "mix", patient_a, series_uid="1.2.3.2")
    assert study.shape[0] == 4 and study.series_instance_uid == "1.2.3.2"


def test_zip_input_and_unsafe_member_names(db, tmp_path, patient_a, media_root):
    folder, stored = _series(tmp_path)
    archive = tmp_path / "upload.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for i, path in enumerate(sorted(folder.iterdir())):
            zf.write(path, arcname=f"series/{i}.dcm")
        zf.writestr("../../evil.dcm", (sorted(folder.iterdir())[0]).read_bytes())
        zf.writestr("/abs/evil2.dcm", b"junk")
    study = import_ct_study(archive, patient_a)
    assert study.provenance["source_kind"] == "zip"
    assert study.shape == [5, 6, 7]
    assert sum("unsafe name" in s for s in study.provenance["skipped"]) == 2
    assert not (tmp_path.parent / "evil.dcm").exists() and not (tmp_path / "evil.dcm").exists()


def test_nifti_import(db, tmp_path, patient_a):
    nib = pytest.importorskip("nibabel")
    data = np.random.default_rng(3).integers(-1000, 1500, size=(7, 6, 5)).astype(np.int16)
    affine = np.array([[-0.7, 0, 0, 10], [0, -0.8, 0, 20], [0, 0, 1.5, -30], [0, 0, 0, 1.0]])
    path = tmp_path / "ct.nii.gz"
    nib.save(nib.Nifti1Image(data, affine), str(path))
    study = import_ct_study(path, patient_a)
    assert study.shape == [5, 6, 7]
    expected = np.diag([-1.0, -1, 1, 1]) @ affine
    np.testing.assert_allclose(study.affine_array, expected, atol=1e-6)
    vol = load_study_volume(study)
    np.testing.assert_array_equal(vol.array, data.transpose(2, 1, 0).astype(np.float32))
    assert study.provenance["source_format"] == "nifti"


def test_deidentify_replaces_patient_name_and_id(db, tmp_path, patient_a):
    folder, _ = _series(tmp_path, patient_name="Secret^Person", patient_id="MRN-777")
    plain = load_ct(folder)
    anon = load_ct(folder, deidentify=True)
    assert plain.metadata["patient_name"] == "Secret^Person"
    assert anon.metadata["patient_name"] not in ("", "Secret^Person")
    assert anon.metadata["patient_id"] not in ("", "MRN-777")
    assert anon.metadata["series_instance_uid"] != plain.metadata["series_instance_uid"]
    np.testing.assert_array_equal(anon.array, plain.array)
    np.testing.assert_allclose(anon.affine, plain.affine, atol=1e-9)
    study = import_ct_study(folder, patient_a, deidentify=True)
    assert study.provenance["deidentified"] is True
    assert study.series_instance_uid not in ("", plain.metadata["series_instance_uid"])
    assert study.study_instance_uid != plain.metadata["study_instance_uid"]


def test_import_ct_command_creates_patient_and_prints_id(db, tmp_path):
    folder, _ = _series(tmp_path)
    out = io.StringIO()
    call_command(
        "import_ct", str(folder), "--patient", "NEW-42", "--description", "cmd", stdout=out
    )
    study = CTStudy.objects.get(pk=int(out.getvalue().strip()))
    assert study.patient.mrn == "NEW-42" and study.description == "cmd"


def test_import_ct_command_refusal_is_one_line_and_rolls_back(db, tmp_path):
    path = shared_path("dicom", "assorted_pydicom", "MR_small.dcm")
    with pytest.raises(CommandError) as err:
        call_command("import_ct", str(path), "--patient", "NEW-43")
    assert str(err.value) == "not a CT image (modality MR)"
    assert "\n" not in str(err.value)
    assert not Patient.objects.filter(mrn="NEW-43").exists()


def test_import_ct_command_exit_code(tmp_path):
    """Run as a real process: non-zero exit and the message on stderr."""
    import os
    import subprocess
    import sys

    path = shared_path("dicom", "malformed", "notavolume")
    env = {**os.environ, "ORTHOFUSE_VAR_DIR": str(tmp_path)}
    env.pop("DATABASE_URL", None)
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput"],
        capture_output=True,
        env=env,
        timeout=300,
        check=True,
    )
    proc = subprocess.run(
        [sys.executable, "manage.py", "import_ct", str(path), "--patient", "X-1"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode != 0
    assert "duplicate slice positions" in proc.stderr


def test_volume_store_reads_through_non_local_storage(db, tmp_path, patient_a, settings):
    """Workers read through storage (no local file): InMemoryStorage keeps bytes only."""
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {"BACKEND": "django.core.files.storage.InMemoryStorage"},
    }
    folder, stored = _series(tmp_path, seed=9)
    study = import_ct_study(folder, patient_a)
    assert type(default_storage._wrapped).__name__ == "InMemoryStorage"
    assert not (tmp_path / "media").exists()  # nothing on the local disk
    hu = stored.astype(np.float32) - 1024
    np.testing.assert_array_equal(load_study_volume(study).array, hu)
    mm = load_study_volume(study, mmap=True)
    assert mm.array.dtype == np.int16
    for axis, index in ((0, 4), (1, 2), (2, 0)):
        np.testing.assert_array_equal(
            read_slice(study, axis, index), np.take(hu, index, axis=axis).astype(np.int16)
        )
    with pytest.raises(IndexError):
        read_slice(study, 0, 5)


def test_import_ct_command_series_and_deidentify_options(db, tmp_path):
    _series(tmp_path / "mix", name="a", n=3, series_uid="1.2.3.1")
    _series(tmp_path / "mix", name="b", n=4, series_uid="1.2.3.2", seed=5)
    with pytest.raises(CommandError) as err:
        call_command("import_ct", str(tmp_path / "mix"), "--patient", "M-1")
    assert "2 series" in str(err.value) and "--series" in str(err.value)
    out = io.StringIO()
    call_command(
        "import_ct", str(tmp_path / "mix"), "--patient", "M-1", "--series", "1.2.3.1",
        "--deidentify", stdout=out,
    )  # fmt: skip
    study = CTStudy.objects.get(pk=int(out.getvalue().strip()))
    assert study.shape[0] == 3 and study.provenance["deidentified"] is True
    assert study.series_instance_uid != "1.2.3.1"  # UIDs are replaced when de-identifying
