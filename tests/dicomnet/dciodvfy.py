"""dciodvfy (Debian's dicom3tools), an independent DICOM object checker, for the tests."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from pydicom.dataset import Dataset


def errors(ds: Dataset, folder: Path) -> list[str]:
    """dciodvfy's ``Error`` lines for ``ds`` (skips the test when dciodvfy is missing)."""
    binary = shutil.which("dciodvfy")
    if binary is None:
        pytest.skip("dciodvfy is not installed (Debian package 'dicom3tools')")
    path = folder / f"{ds.SOPInstanceUID}.dcm"
    ds.save_as(path, enforce_file_format=True)
    run = subprocess.run([binary, str(path)], capture_output=True, text=True, timeout=60)
    lines = (run.stdout + run.stderr).splitlines()
    return [line for line in lines if line.startswith("Error")]
