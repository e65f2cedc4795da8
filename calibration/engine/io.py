"""File helpers for the calibration commands: reading X-rays, atomic JSON / 16-bit PNG writes.

Reading uses ``webapp.dicomio.xray.read_xray`` (Django-free) for DICOM and PNG; DICOM
ImagerPixelSpacing is ``[row, col] = [sy, sx]`` and is returned as ``(sx, sy)``.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np


class ImageReadError(ValueError):
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
        from webapp.dicomio.xray import read_xray
    except ImportError:  # pragma: no cover - reader always ships with the project
        read_xray = None
    if read_xray is not None:
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
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)  # pragma: no cover
    if img is None or img.ndim != 2:  # pragma: no cover
        raise ImageReadError(f"{path.name} is not a readable greyscale image")
    return LoadedImage(img, None)  # pragma: no cover


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise OSError(f"output folder does not exist: {directory}")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def write_json_atomic(path, obj) -> None:
    _atomic_write_bytes(Path(path), (json.dumps(obj, indent=1) + "\n").encode("utf-8"))


def to_uint16(image: np.ndarray) -> np.ndarray:
    """Stored values -> uint16: kept when they fit in 0..65535, else rescaled linearly."""
    img = np.asarray(image)
    if img.dtype == np.uint16:
        return img
    if img.dtype == np.uint8:
        return img.astype(np.uint16) * 257
    f = img.astype(np.float64)
    lo, hi = float(np.min(f)), float(np.max(f))
    if lo >= 0 and hi <= 65535:
        return np.round(f).astype(np.uint16)
    if hi <= lo:
        return np.zeros(f.shape, np.uint16)
    return np.round((f - lo) / (hi - lo) * 65535).astype(np.uint16)


def write_png16_atomic(path, image: np.ndarray) -> None:
    ok, buf = cv2.imencode(".png", to_uint16(image))
    if not ok:  # pragma: no cover
        raise OSError("PNG encoding failed")
    _atomic_write_bytes(Path(path), buf.tobytes())
