"""File helpers for the calibration commands: atomic JSON and 16-bit PNG writes.

(Reading X-rays lives in ``webapp.calibration.management.commands``, which uses
``dicomio.read_xray``: importing the ``webapp`` package pulls in Django.)
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import cv2
import numpy as np


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
