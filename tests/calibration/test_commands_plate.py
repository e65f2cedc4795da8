"""calibrate_carm --sdd and dewarp on a grid plate, end to end (PNG and RF DICOM)."""

import json

import cv2
import numpy as np
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from calibration.engine.plate_lattice import measure_lattice_deviation
from tests.calibration.plate_helpers import SP, plate, small_frame, write_png, write_rf


@pytest.fixture(scope="module")
def plate_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("plate")
    ph = plate("hex", "hole", name="hex hole plate")
    (d / "plate.json").write_text(json.dumps(ph.to_dict()))
    sim = small_frame(ph, seed=21, strength=2.0)
    write_png(d / "plate.png", sim.image)
    write_rf(d / "plate.dcm", sim.image, [SP, SP], sdd=1150)
    return ph, sim, d


def test_calibrate_png_with_sdd_then_dewarp(plate_files, tmp_path, capsys):
    ph, sim, d = plate_files
    prof = tmp_path / "profile.json"
    call_command(
        "calibrate_carm", image=str(d / "plate.png"), phantom=str(d / "plate.json"),
        out=str(prof), pixel_spacing=[SP, SP], sdd=1234.5,
    )  # fmt: skip
    assert "plate markers on a hex lattice" in capsys.readouterr().out
    p = json.loads(prof.read_text())
    assert p["source"] == "nominal" and p["source_mm"] == [0.0, 0.0, -1234.5]
    assert p["source_to_detector_origin"] == "--sdd"
    k = np.array(p["K"])
    assert np.allclose(k, [[1234.5 / SP, 0, 255.5], [0, 1234.5 / SP, 255.5], [0, 0, 1]])
    assert p["forward"]["order"] in (3, 4, 5) and p["inverse"]["order"] >= 3
    assert p["residuals_px"]["rms"] < 0.15 and p["beads_used"] > 500
    out = tmp_path / "dewarped.png"
    call_command("dewarp", image=str(d / "plate.png"), profile=str(prof), out=str(out))
    img = cv2.imread(str(out), cv2.IMREAD_UNCHANGED)
    assert img.dtype == np.uint16 and img.shape == sim.image.shape
    centre = np.array(sim.forward_gt(np.array([sim.fov_centre_px])))[0]
    raw = measure_lattice_deviation(sim.image, ph.grid, (SP, SP))
    dw = measure_lattice_deviation(
        img, ph.grid, (SP, SP), field_centre=centre, field_radius=sim.fov_radius_px
    )
    assert raw["rms_px"] > 0.6 and dw["rms_px"] < 0.25


def test_calibrate_dicom_takes_the_header_sdd_and_sdd_overrides_it(plate_files, tmp_path):
    _, _, d = plate_files
    prof = tmp_path / "p.json"
    call_command(
        "calibrate_carm", image=str(d / "plate.dcm"), phantom=str(d / "plate.json"), out=str(prof)
    )
    p = json.loads(prof.read_text())
    assert p["source_mm"] == [0.0, 0.0, -1150.0] and p["pixel_spacing_mm"] == [SP, SP]
    assert p["source_to_detector_origin"] == "DICOM DistanceSourceToDetector"
    call_command(
        "calibrate_carm", image=str(d / "plate.dcm"), phantom=str(d / "plate.json"),
        out=str(prof), sdd=980,
    )  # fmt: skip
    assert json.loads(prof.read_text())["source_mm"] == [0.0, 0.0, -980.0]


def test_png_without_sdd_is_refused_with_what_to_pass(plate_files, tmp_path):
    from django.core.management.base import CommandError

    _, _, d = plate_files
    prof = tmp_path / "p.json"
    with pytest.raises(CommandError, match="pass --sdd MM"):
        call_command(
            "calibrate_carm", image=str(d / "plate.png"), phantom=str(d / "plate.json"),
            out=str(prof), pixel_spacing=[SP, SP],
        )  # fmt: skip
    assert not prof.exists()


def test_monochrome1_dicom(tmp_path):
    ph = plate("square", "bead", diameter=1.0, name="bead plate")
    (tmp_path / "plate.json").write_text(json.dumps(ph.to_dict()))
    sim = small_frame(ph, seed=22)
    write_rf(tmp_path / "m1.dcm", 4095 - sim.image, [SP, SP], sdd=1000, photometric="MONOCHROME1")
    prof = tmp_path / "p.json"
    call_command(
        "calibrate_carm",
        image=str(tmp_path / "m1.dcm"),
        phantom=str(tmp_path / "plate.json"),
        out=str(prof),
    )
    p = json.loads(prof.read_text())
    assert p["lattice"]["kind"] == "square" and p["residuals_px"]["rms"] < 0.15


def test_plate_refusals_leave_no_output(plate_files, tmp_path):
    _, _, d = plate_files
    prof = tmp_path / "p.json"
    with pytest.raises(CommandError, match="--sdd must be a distance"):
        call_command(
            "calibrate_carm", image=str(d / "plate.png"), phantom=str(d / "plate.json"),
            out=str(prof), pixel_spacing=[SP, SP], sdd=-5,
        )  # fmt: skip
    with pytest.raises(CommandError, match="calibration refused: .*wrong pixel spacing"):
        call_command(
            "calibrate_carm", image=str(d / "plate.png"), phantom=str(d / "plate.json"),
            out=str(prof), pixel_spacing=[0.3, 0.3], sdd=1000,
        )  # fmt: skip
    bad = tmp_path / "bad.json"
    bad.write_text(
        json.dumps(
            {
                "name": "x",
                "grid": {"lattice": "square", "pitch_mm": 3, "marker": "slot", "diameter_mm": 1},
            }
        )
    )
    with pytest.raises(CommandError, match='grid marker must be "bead" or "hole"'):
        call_command(
            "calibrate_carm", image=str(d / "plate.png"), phantom=str(bad), out=str(prof),
            pixel_spacing=[SP, SP],
        )  # fmt: skip
    assert not prof.exists()
