"""calibrate_carm and dewarp commands end to end (PNG in, profile.json / 16-bit PNG out)."""

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from calibration.engine.phantom import PHANTOM_DIR, builtin_phantom
from simulation.phantom_frames import SimGeometry, simulate_phantom_image

SP = 0.5
CLIPON = str(PHANTOM_DIR / "clipon_two_layer.json")
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def phantom_png(tmp_path_factory):
    d = tmp_path_factory.mktemp("cal")
    sim = simulate_phantom_image(
        builtin_phantom("clipon_two_layer"),
        SimGeometry(512, 512, (SP, SP), (4.0, 2.0, -1000.0)),
        rng=2,
    )
    path = d / "phantom.png"
    cv2.imwrite(str(path), sim.image.astype(np.uint16))
    return sim, path


def test_calibrate_then_dewarp(phantom_png, tmp_path):
    sim, png = phantom_png
    prof = tmp_path / "profile.json"
    call_command(
        "calibrate_carm", image=str(png), phantom=CLIPON, out=str(prof), pixel_spacing=[SP, SP]
    )
    p = json.loads(prof.read_text())
    assert p["width"] == 512 and p["pixel_spacing_mm"] == [SP, SP]
    assert np.linalg.norm(np.array(p["source_mm"]) - [4.0, 2.0, -1000.0]) < 5.0
    assert p["residuals_mm"]["rms"] < 0.1
    out = tmp_path / "dewarped.png"
    call_command("dewarp", image=str(png), profile=str(prof), out=str(out))
    img = cv2.imread(str(out), cv2.IMREAD_UNCHANGED)
    assert img.dtype == np.uint16 and img.shape == (512, 512)
    assert img[256, 256] > 10000 and img[0, 0] == 0
    assert not list(tmp_path.glob(".*tmp"))


def test_refusals_leave_no_output(phantom_png, tmp_path):
    _, png = phantom_png
    prof = tmp_path / "profile.json"
    with pytest.raises(CommandError, match="has no pixel spacing"):
        call_command("calibrate_carm", image=str(png), phantom=CLIPON, out=str(prof))
    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full((256, 256), 500, np.uint16))
    with pytest.raises(CommandError, match="calibration refused: image is blank"):
        call_command(
            "calibrate_carm",
            image=str(blank),
            phantom=CLIPON,
            out=str(prof),
            pixel_spacing=[SP, SP],
        )
    bad_phantom = tmp_path / "ph.json"
    bad_phantom.write_text('{"name": "x", "beads": []}')
    with pytest.raises(CommandError, match="has 0 beads"):
        call_command(
            "calibrate_carm",
            image=str(png),
            phantom=str(bad_phantom),
            out=str(prof),
            pixel_spacing=[SP, SP],
        )
    with pytest.raises(CommandError, match="not found"):
        call_command(
            "calibrate_carm",
            image=str(tmp_path / "none.png"),
            phantom=CLIPON,
            out=str(prof),
            pixel_spacing=[SP, SP],
        )
    assert not prof.exists()
    out = tmp_path / "o.png"
    with pytest.raises(CommandError, match="profile file not found"):
        call_command("dewarp", image=str(png), profile=str(tmp_path / "nope.json"), out=str(out))
    broken = tmp_path / "broken.json"
    broken.write_text('{"width": 512, "height": 512}')
    with pytest.raises(CommandError, match="missing field 'forward'"):
        call_command("dewarp", image=str(png), profile=str(broken), out=str(out))
    assert not out.exists()
    assert sorted(x.name for x in tmp_path.iterdir()) == ["blank.png", "broken.json", "ph.json"]


def test_exit_code_and_one_line_message(phantom_png, tmp_path):
    _, png = phantom_png
    out = tmp_path / "profile.json"
    proc = subprocess.run(
        [sys.executable, "manage.py", "calibrate_carm", "--image", str(png), "--phantom", CLIPON,
         "--out", str(out)],  # fmt: skip
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode != 0
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and "pixel spacing" in lines[0]
    assert not out.exists()


def _write_xa(path, pixels, spacing_row_col, photometric="MONOCHROME2"):
    import pydicom
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.12.1"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "XA"
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.ImagerPixelSpacing = [str(v) for v in spacing_row_col]
    ds.PositionerPrimaryAngle = "12.5"
    ds.PositionerSecondaryAngle = "-3"
    ds.PixelData = pixels.astype(np.uint16).tobytes()
    pydicom.dcmwrite(path, ds, enforce_file_format=True)


def test_dicom_input_uses_imager_pixel_spacing_row_col(tmp_path):
    sx, sy = 0.5, 0.52
    sim = simulate_phantom_image(
        builtin_phantom("clipon_two_layer"),
        SimGeometry(512, 512, (sx, sy), (0.0, 0.0, -1000.0)),
        rng=6,
    )
    dcm = tmp_path / "phantom.dcm"
    _write_xa(dcm, sim.image, [sy, sx])  # DICOM order: row spacing, column spacing
    prof = tmp_path / "profile.json"
    call_command("calibrate_carm", image=str(dcm), phantom=CLIPON, out=str(prof))
    p = json.loads(prof.read_text())
    assert p["pixel_spacing_mm"] == [sx, sy]
    assert p["primary_angle_deg"] == pytest.approx(12.5)
    assert p["secondary_angle_deg"] == pytest.approx(-3.0)
    k = np.array(p["K"])
    assert k[0, 0] / k[1, 1] == pytest.approx(sy / sx, rel=1e-9)
    assert p["residuals_mm"]["rms"] < 0.1
    out = tmp_path / "dw.png"
    call_command("dewarp", image=str(dcm), profile=str(prof), out=str(out))
    assert cv2.imread(str(out), cv2.IMREAD_UNCHANGED).dtype == np.uint16
