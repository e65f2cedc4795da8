"""Zip archives and deflated DICOM are bounded before they are inflated: a zip is refused
from its central directory when it declares more than the size limit or more than
``MAX_INFLATE_RATIO`` times its own size (or a member more than that ratio of its compressed
size), a member never yields more than it declares, and a deflated DICOM data set is inflated
in bounded steps up to that ratio. Real DICOM (zipped, deflated) still imports."""

from __future__ import annotations

import os
import re
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest

from dicomio import InputRefused, load_ct, read_xray
from dicomio.bombs import deflated_dicom_bomb, zip_bomb
from dicomio.dataset import read_dataset
from dicomio.sources import (
    INFLATE_RATIO_FLOOR,
    MAX_INFLATE_RATIO,
    SourceFile,
    collect_sources,
    inflate_limit,
)

MIB = 2**20
PEAK_LIMIT = 100 * 10**6  # bytes a refusal may take
DICOM = Path(os.environ.get("ORTHOFUSE_SHARED_DATA", "/work/shared/data")) / "dicom"
BOMB = r"refused as a decompression bomb \(real DICOM data compresses less than 200 times\)"


def _refused_with_little_memory(call, *args) -> tuple[str, int]:
    """The refusal message of ``call(*args)`` and the tracemalloc peak it took (bytes)."""
    tracemalloc.start()
    try:
        with pytest.raises(InputRefused) as err:
            call(*args)
        _size, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < PEAK_LIMIT, f"refusing took {peak / MIB:.0f} MiB"
    return err.value.message, peak


def test_the_ratio_limit_has_a_floor_and_a_ceiling():
    assert MAX_INFLATE_RATIO == 200 and INFLATE_RATIO_FLOOR == MIB
    assert inflate_limit(100, 2**30) == MIB  # small files may compress better
    assert inflate_limit(10**6, 2**30) == 200 * 10**6
    assert inflate_limit(10**8, 2**30) == 2**30  # never above the size limit


def test_a_65_kb_zip_of_64_mib_of_zeros_is_refused(tmp_path):
    path = tmp_path / "x.zip"
    path.write_bytes(zip_bomb({"slice.dcm": (b"", 64 * MIB)}))
    assert 60e3 < path.stat().st_size < 70e3
    message, _peak = _refused_with_little_memory(load_ct, path)
    assert re.fullmatch(
        rf"the zip archive x\.zip expands to 67\.1 MB from 65\.\d kB \(10\d\d times\): {BOMB}",
        message,
    ), message


def test_a_1_mb_zip_of_900_mib_of_zeros_is_refused(tmp_path):
    path = tmp_path / "big.zip"
    path.write_bytes(zip_bomb({"slice.dcm": (b"", 900 * MIB)}))
    assert 0.8e6 < path.stat().st_size < 1.0e6
    message, _peak = _refused_with_little_memory(load_ct, path)
    assert re.fullmatch(
        rf"the zip archive big\.zip expands to 943\.7 MB from 9\d\d\.\d kB \(10\d\d times\): {BOMB}",
        message,
    ), message


def test_many_small_members_are_refused_by_the_archive_ratio(tmp_path):
    """Each 1 MiB member is under the floor; together 300 MiB from 0.3 MB."""
    path = tmp_path / "many.zip"
    path.write_bytes(zip_bomb({f"s{i:03d}.dcm": (b"", MIB) for i in range(300)}))
    message, _peak = _refused_with_little_memory(load_ct, path)
    assert re.fullmatch(rf"the zip archive many\.zip expands to 314\.6 MB from .*: {BOMB}", message)


def test_a_bomb_member_beside_incompressible_data_is_refused(tmp_path):
    """The archive as a whole expands 170 times (under the limit) but one member 1000 times."""
    noise = np.random.default_rng(3).integers(0, 256, 2 * 10**6, dtype=np.uint8).tobytes()
    path = tmp_path / "mixed.zip"
    path.write_bytes(zip_bomb({"noise.dcm": (noise, 0), "zeros.dcm": (b"", 320 * MIB)}))
    message, _peak = _refused_with_little_memory(load_ct, path)
    assert re.fullmatch(
        rf"the zip archive mixed\.zip \(member 'zeros\.dcm'\) expands to 335\.5 MB from "
        rf"3\d\d\.\d kB \(10\d\d times\): {BOMB}",
        message,
    ), message


def test_a_member_holding_more_than_it_declares_yields_no_more(tmp_path):
    """A forged size of 1000 bytes over 64 MiB of zeros: inflating stops at 1000 bytes and
    the member fails its checksum."""
    path = tmp_path / "forged.zip"
    path.write_bytes(zip_bomb({"a.dcm": (b"", 64 * MIB)}, declare=1000))
    message, peak = _refused_with_little_memory(collect_sources, path)
    assert message == (
        "forged.zip: zip member #1 (a.dcm) cannot be read: it is damaged or forged "
        "(Bad CRC-32 for file 'a.dcm')"
    )
    assert peak < 5 * MIB


def test_the_declared_total_is_bounded_by_the_size_limit(tmp_path):
    path = tmp_path / "huge.zip"
    path.write_bytes(zip_bomb({"slice.dcm": (b"", 2 * 2**30)}))
    message, _peak = _refused_with_little_memory(load_ct, path)
    assert message == "huge.zip: the zip archive expands to 2.1 GB, more than the limit of 1.1 GB"


def test_a_deflated_dicom_bomb_is_refused_before_pydicom_inflates_it(tmp_path):
    """960 MB of pixels in 0.9 MB: under the old 1 GiB inflate limit, over the ratio."""
    path = tmp_path / "deflated.dcm"
    path.write_bytes(deflated_dicom_bomb(20000, 24000))
    assert path.stat().st_size < 1.0e6
    message, _peak = _refused_with_little_memory(load_ct, path)
    assert re.fullmatch(
        rf"deflated\.dcm: the deflated dataset expands to more than 1\d\d\.\d MB from "
        rf"\d\d\d\.\d kB \(more than 200 times\): {BOMB}",
        message,
    ), message


def test_a_deflated_dicom_xray_bomb_is_refused(tmp_path):
    path = tmp_path / "xa.dcm"
    path.write_bytes(deflated_dicom_bomb(20000, 24000, modality="XA"))
    message, _peak = _refused_with_little_memory(read_xray, path)
    assert message.startswith("xa.dcm: the deflated dataset expands to more than")
    message, _peak = _refused_with_little_memory(read_xray, path.read_bytes())
    assert message.startswith("image: the deflated dataset expands to more than")


def test_a_small_blank_deflated_slice_is_under_the_floor():
    """512 x 512 zeros deflate about 1000 times, but 512 KiB is below the ratio floor."""
    ds = read_dataset(SourceFile(name="blank.dcm", data=deflated_dicom_bomb(512, 512)))
    assert ds is not None and len(ds.PixelData) == 512 * 512 * 2 and not any(ds.PixelData[:1024])


def _shared(folder: str) -> Path:
    path = DICOM / folder
    if not path.is_dir():
        pytest.skip(f"shared data missing: {path}")
    return path


def test_a_real_deflated_ct_slice_still_reads():
    folder = _shared("transfer_syntaxes")
    name = "CTImage.dcm_DeflatedExplicitVRLittleEndianTransferSyntax_1.2.840.10008.1.2.1.99.dcm"
    ds = read_dataset(SourceFile(name=name, path=folder / name))
    plain = read_dataset(SourceFile(name="plain", path=folder / "CTImage.dcm"))
    assert ds is not None and ds.PixelData == plain.PixelData


@pytest.mark.parametrize("series", ["ct_series_spine_philips", "ct_series_abdomen_j2k"])
def test_a_zip_of_a_real_ct_series_still_imports(tmp_path, series):
    folder = _shared(series)
    path = tmp_path / f"{series}.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for file in sorted(folder.iterdir()):
            archive.write(file, arcname=f"{series}/{file.name}")
    zipped, direct = load_ct(path), load_ct(folder)
    assert zipped.shape == direct.shape and zipped.shape[1:] == (512, 512)
    assert np.array_equal(zipped.array, direct.array)
    assert zipped.metadata["source_kind"] == "zip"
