"""Every file and series in ../shared/data/dicom either imports with correct geometry or is
refused with a clear one-line message, leaving no study row and no stored file.

Each single file is one import attempt; so are each series folder and each malformed
subfolder. Imports that needed no resampling are checked against SimpleITK.
"""

from __future__ import annotations

import warnings

import numpy as np
import pydicom
import pytest

from tests.conftest import SHARED_DATA
from webapp.records.ct_import import ImportRefused, import_ct_study
from webapp.records.models import CTStudy
from webapp.records.volume_store import load_study_volume

DICOM_DIR = SHARED_DATA / "dicom"
SERIES_FOLDERS = ["ct_series_spine_philips", "ct_series_abdomen_j2k", "ct_series_head_ge_tilted"]


def _cases() -> list[str]:
    if not DICOM_DIR.exists():
        return ["<missing>"]
    cases = []
    for path in sorted(DICOM_DIR.rglob("*")):
        rel = path.relative_to(DICOM_DIR).as_posix()
        if path.is_file():
            # one file of the big spine series is enough as a single-file attempt
            if rel.startswith("ct_series_spine_philips/") and not rel.endswith("1-001.dcm"):
                continue
            cases.append(rel)
    cases += SERIES_FOLDERS
    cases += sorted(
        p.relative_to(DICOM_DIR).as_posix()
        for p in (DICOM_DIR / "malformed").glob("*/*")
        if p.is_dir()
    )
    cases += sorted(
        p.relative_to(DICOM_DIR).as_posix()
        for p in (DICOM_DIR / "malformed").glob("*")
        if p.is_dir()
    )
    return cases


def _header(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return pydicom.dcmread(path, force=True, stop_before_pixels=True)
        except Exception:  # noqa: BLE001
            return None


@pytest.fixture(autouse=True)
def media_root(tmp_path, settings):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    }
    return settings.MEDIA_ROOT


@pytest.mark.parametrize("case", _cases())
def test_shared_dicom_imports_or_is_refused_cleanly(case, db, patient_a, media_root):
    if case == "<missing>":
        pytest.skip(f"shared data not available: {DICOM_DIR}")
    path = DICOM_DIR / case
    try:
        study = import_ct_study(path, patient_a)
    except ImportRefused as exc:
        msg = exc.message
        assert msg and "\n" not in msg and "Traceback" not in msg and len(msg) < 1500
        assert CTStudy.objects.count() == 0
        assert not media_root.exists() or not any(p.is_file() for p in media_root.rglob("*"))
        if path.is_file():
            _check_single_file_message(path, msg)
        return
    # imported: a ready study with a stored volume and a plausible geometry
    assert study.status == CTStudy.Status.READY
    vol = load_study_volume(study)
    assert vol.shape[0] >= 2 and np.all(vol.spacing > 0.1) and np.all(vol.spacing < 20)
    assert -3100 <= study.hu_min < study.hu_max <= 40000
    if not study.provenance["resampled"]:
        _check_against_simpleitk(path, vol)


def _check_single_file_message(path, msg):
    ds = _header(path)
    modality = str(ds.get("Modality", "") or "").upper() if ds is not None else ""
    has_pixels = ds is not None and ("Rows" in ds or "PixelData" in ds)
    if modality and modality != "CT":
        assert msg == f"not a CT image (modality {modality})"
    elif has_pixels and modality == "CT" and int(ds.get("NumberOfFrames", 1) or 1) == 1:
        # a lone CT slice: refused as one slice, or earlier by name when it cannot be decoded
        ts = str(ds.file_meta.get("TransferSyntaxUID", "")) if hasattr(ds, "file_meta") else ""
        assert msg.startswith("only 1 slice") or (ts and ts in msg), msg


def _check_against_simpleitk(path, vol):
    sitk = pytest.importorskip("SimpleITK")
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(path)))
    img = reader.Execute()
    spacing = np.array(img.GetSpacing())
    direction = np.array(img.GetDirection()).reshape(3, 3)
    np.testing.assert_allclose(vol.spacing, spacing, atol=1e-3)
    np.testing.assert_allclose(vol.origin, img.GetOrigin(), atol=1e-3)
    np.testing.assert_allclose(vol.affine[:3, :3], direction * spacing, atol=1e-3)
    np.testing.assert_array_equal(vol.array, sitk.GetArrayFromImage(img).astype(np.float32))
