"""Seeded byte-level corruption of real files: only a clean refusal or a valid result.

Decoders written in Rust raise ``PanicException`` (a ``BaseException``) on some corrupt
codestreams (the RLE case here triggers it); those must become refusals too.
"""

from __future__ import annotations

import numpy as np
import pytest

from dicomio import CTVolume, InputRefused, XrayData, load_ct, read_xray
from tests.conftest import shared_path

SOURCES = [
    ("transfer_syntaxes", "CTImage.dcm_RLELosslessTransferSyntax_1.2.840.10008.1.2.5.dcm"),
    ("transfer_syntaxes", "CTImage.dcm_JPEG2000LosslessOnlyTransferSyntax_1.2.840.10008.1.2.4.90.dcm"),
    ("transfer_syntaxes", "CTImage.dcm_JPEGLSLosslessTransferSyntax_1.2.840.10008.1.2.4.80.dcm"),
    ("transfer_syntaxes", "CTImage.dcm_DeflatedExplicitVRLittleEndianTransferSyntax_1.2.840.10008.1.2.1.99.dcm"),
    ("malformed", "gantrytilting", "001", "IM-0001-0001.dcm"),
]  # fmt: skip


def _mutate(data: bytes, rng: np.random.Generator) -> bytes:
    """Header-biased corruption: a few bytes, mostly in the first 4 kB, sometimes truncated."""
    buf = bytearray(data)
    for _ in range(int(rng.integers(1, 20))):
        limit = min(len(buf), 4000) if rng.random() < 0.7 else len(buf)
        buf[int(rng.integers(0, limit))] = int(rng.integers(0, 256))
    if rng.random() < 0.2:
        buf = buf[: int(rng.integers(100, len(buf)))]
    return bytes(buf)


def _mutate_pixels(data: bytes, rng: np.random.Generator) -> bytes:
    """Codestream corruption: up to 50 bytes in the last two thirds of the file."""
    buf = bytearray(data)
    for _ in range(int(rng.integers(1, 50))):
        buf[int(rng.integers(len(buf) // 3, len(buf)))] = int(rng.integers(0, 256))
    return bytes(buf)


@pytest.mark.parametrize("parts", SOURCES, ids=lambda p: p[-1][:40])
def test_corrupted_files_are_refused_or_read(parts, tmp_path):
    original = shared_path("dicom", *parts).read_bytes()
    rng = np.random.default_rng(len(parts[-1]))
    for n in range(40):
        path = tmp_path / f"m{n}.dcm"
        path.write_bytes((_mutate if n % 2 else _mutate_pixels)(original, rng))
        for reader, kind in ((load_ct, CTVolume), (read_xray, XrayData)):
            try:
                result = reader(path)
            except InputRefused as exc:
                assert exc.message and "\n" not in exc.message
            else:
                assert isinstance(result, kind)
