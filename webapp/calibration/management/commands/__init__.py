"""calibrate_carm, dewarp and bench_calibration commands (thin wrappers over calibration.engine).

:func:`read_image` reads a DICOM X-ray or a greyscale PNG with
``dicomio.xray.read_xray``; DICOM ImagerPixelSpacing is ``[row, col] = [sy, sx]``
and is returned here as ``(sx, sy)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dicomio.xray import read_xray
from refusal import Refused


class ImageReadError(Refused):
    """The image file cannot be used; one-line message."""


@dataclass
class LoadedImage:
    pixels: np.ndarray  # (H, W) stored values
    spacing: tuple[float, float] | None  # (sx, sy) mm or None
    photometric: str = "MONOCHROME2"
    file_format: str = "png"
    metadata: dict = field(default_factory=dict)


def read_image(path) -> LoadedImage:
    """Read a DICOM X-ray or a greyscale PNG."""
    path = Path(path)
    if not path.is_file():
        raise ImageReadError(f"image file not found: {path}")
    try:
        xr = read_xray(path)
    except ValueError as exc:
        raise ImageReadError(str(exc)) from None
    geo = xr.geometry or {}
    sp = geo.get("pixel_spacing_mm")
    md = {
        "primary_angle_deg": geo.get("primary_angle_deg"),
        "secondary_angle_deg": geo.get("secondary_angle_deg"),
        "source_to_detector_mm": geo.get("source_to_detector_mm"),
    }
    return LoadedImage(
        np.asarray(xr.pixels),
        (float(sp[0]), float(sp[1])) if sp else None,
        xr.photometric or "MONOCHROME2",
        xr.file_format,
        md,
    )
