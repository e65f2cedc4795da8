"""Reading intra-operative X-ray images: DICOM XA/RF/DX/CR and 8/16-bit PNG (no Django imports).

Public entry point: :func:`read_xray` (re-exported as ``dicomio.read_xray``)::

    xr = read_xray("shot.dcm")
    xr.pixels        # float32 (H, W) stored values (no VOI/LUT, MONOCHROME1 kept as stored)
    xr.photometric   # "MONOCHROME1" | "MONOCHROME2"
    xr.geometry      # {"source_to_detector_mm", "source_to_patient_mm",
                     #  "pixel_spacing_mm": [sx, sy] (column, row) or None, ...}

DICOM pixel spacing tags are ``[row spacing, column spacing]`` = ``[sy, sx]``; the geometry
dict always gives ``[sx, sy]`` as CONVENTIONS.md does. ImagerPixelSpacing (detector plane)
is preferred over PixelSpacing. Values that are missing or non-positive are ``None``.
Multi-frame files use the first frame (``notes`` says so). PNG files carry no geometry: the
caller fills it from a C-arm profile.

:func:`zero_preamble` blanks the 128-byte DICOM preamble before a file is stored
(CVE-2019-11687: a preamble can make a DICOM file also a valid executable).
"""

from __future__ import annotations

import io
import math
import struct
import warnings
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from dicomio.dataset import (
    DEFAULT_MAX_VOXELS,
    _get,
    _int,
    _text,
    _ts_label,
    check_deflate_bomb,
)
from dicomio.errors import InputRefused, reraise_if_fatal
from dicomio.pixels import check_pixel_header
from dicomio.sources import DEFAULT_MAX_BYTES, SourceFile

XRAY_MODALITIES = ("XA", "RF", "DX", "CR")
# No X-ray detector has more pixels than this (a 43 cm panel at 50 um is 8600 x 8600): an
# image that declares more is refused before it is decoded.
MAX_XRAY_PIXELS = 9000 * 9000
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@dataclass
class XrayData:
    """One X-ray image. ``pixels``: float32 (H, W) stored values; geometry in mm / degrees."""

    pixels: np.ndarray
    photometric: str
    geometry: dict
    file_format: str  # "dicom" | "png"
    modality: str = ""
    bits_stored: int | None = None
    sop_instance_uid: str = ""
    acquired: str = ""  # DICOM date+time "YYYYMMDDHHMMSS" when known
    n_frames: int = 1
    notes: list[str] = field(default_factory=list)

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])


def zero_preamble(data: bytes) -> bytes:
    """Return DICOM file bytes with the 128-byte preamble set to zeros (CVE-2019-11687)."""
    if len(data) >= 132 and data[128:132] == b"DICM":
        return b"\x00" * 128 + data[128:]
    return data


def _positive(value) -> float | None:
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) and f > 0 else None


def _finite(value) -> float | None:
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _spacing_sx_sy(value) -> list[float] | None:
    """DICOM ``[row, column]`` spacing -> ``[sx, sy]``, or None when absent/invalid."""
    if value is None:
        return None
    try:
        values = [float(v) for v in value]
    except (TypeError, ValueError):
        return None
    if len(values) != 2 or not all(math.isfinite(v) and v > 0 for v in values):
        return None
    return [values[1], values[0]]


def _geometry(ds: Dataset, width: int, height: int) -> dict:
    spacing = _spacing_sx_sy(_get(ds, "ImagerPixelSpacing"))
    spacing_source = "ImagerPixelSpacing" if spacing else None
    if spacing is None:
        spacing = _spacing_sx_sy(_get(ds, "PixelSpacing"))
        spacing_source = "PixelSpacing" if spacing else None
    return {
        "width": width,
        "height": height,
        "source_to_detector_mm": _positive(_get(ds, "DistanceSourceToDetector")),
        "source_to_patient_mm": _positive(_get(ds, "DistanceSourceToPatient")),
        "pixel_spacing_mm": spacing,
        "pixel_spacing_source": spacing_source,
        "primary_angle_deg": _finite(_get(ds, "PositionerPrimaryAngle")),
        "secondary_angle_deg": _finite(_get(ds, "PositionerSecondaryAngle")),
    }


def _read_dicom(path: Path, *, max_voxels: int, data: bytes | None = None) -> XrayData:
    src = SourceFile(name=path.name, path=path if data is None else None, data=data)
    try:
        check_deflate_bomb(src, DEFAULT_MAX_BYTES)
    except zlib.error:
        raise InputRefused(f"{path.name}: the deflated data set is corrupt") from None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            ds = pydicom.dcmread(io.BytesIO(data) if data is not None else path, force=True)
            for _elem in ds:
                pass
        except (InvalidDicomError, BaseException) as exc:  # noqa: BLE001
            reraise_if_fatal(exc)
            raise InputRefused(
                f"{path.name} is not a readable DICOM file ({str(exc)[:120]})"
            ) from None
    if "SOPClassUID" not in ds and "PixelData" not in ds and "Modality" not in ds:
        raise InputRefused(f"{path.name} is not a DICOM or PNG file")
    modality = _text(ds, "Modality").upper()
    if modality not in XRAY_MODALITIES:
        raise InputRefused(
            f"not an X-ray image (modality {modality or 'missing'}; expected XA, RF, DX or CR)"
        )
    photometric = _text(ds, "PhotometricInterpretation").upper()
    if photometric not in ("MONOCHROME1", "MONOCHROME2"):
        raise InputRefused(
            f"{path.name}: photometric interpretation {photometric or 'missing'} is not a "
            "greyscale X-ray (MONOCHROME1 or MONOCHROME2 expected)"
        )
    rows, cols = _int(ds, "Rows", 0), _int(ds, "Columns", 0)
    if rows * cols > MAX_XRAY_PIXELS:
        raise InputRefused(
            f"{path.name}: the image declares {cols} x {rows} pixels per frame, more than any "
            f"X-ray detector ({MAX_XRAY_PIXELS})"
        )
    check_pixel_header(ds, path.name, max_voxels=max_voxels)
    n_frames = _int(ds, "NumberOfFrames", 1) or 1
    notes = []
    label = _ts_label(ds)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            if n_frames > 1:
                ds.pixel_array_options(index=0)
                notes.append(f"multi-frame image: the first of {n_frames} frames was used")
            arr = np.asarray(ds.pixel_array)
        except NotImplementedError:
            raise InputRefused(
                f"{path.name}: pixel data in transfer syntax {label} cannot be decoded by the "
                "installed decoders"
            ) from None
        except BaseException as exc:  # noqa: BLE001
            reraise_if_fatal(exc)
            raise InputRefused(
                f"{path.name}: pixel data in transfer syntax {label} could not be decoded "
                f"({type(exc).__name__}: {str(exc)[:120]})"
            ) from None
    if arr.ndim == 3 and arr.shape[0] == n_frames and n_frames > 1:
        arr = arr[0]
    if arr.ndim != 2:
        raise InputRefused(f"{path.name}: decoded pixels have shape {arr.shape}, expected (H, W)")
    height, width = arr.shape
    bits_stored = _get(ds, "BitsStored")
    date = _text(ds, "AcquisitionDate") or _text(ds, "ContentDate") or _text(ds, "StudyDate")
    time = _text(ds, "AcquisitionTime") or _text(ds, "ContentTime") or _text(ds, "StudyTime")
    return XrayData(
        pixels=arr.astype(np.float32),
        photometric=photometric,
        geometry=_geometry(ds, width, height),
        file_format="dicom",
        modality=modality,
        bits_stored=int(bits_stored) if bits_stored is not None else None,
        sop_instance_uid=_text(ds, "SOPInstanceUID"),
        acquired=(date + time.split(".")[0]) if date else "",
        n_frames=n_frames,
        notes=notes,
    )


def _png_size(head: bytes) -> tuple[int, int, int, int]:
    """(width, height, bit depth, colour type) from the PNG IHDR chunk, before decoding."""
    if len(head) < 29 or head[:8] != PNG_MAGIC or head[12:16] != b"IHDR":
        raise InputRefused("the PNG header is damaged")
    width, height, depth, colour = struct.unpack(">IIBB", head[16:26])
    return width, height, depth, colour


def _read_png(path: Path, *, max_voxels: int, data: bytes | None = None) -> XrayData:
    import cv2

    if data is None:
        data = path.read_bytes()
    head = data[:64]
    width, height, depth, colour = _png_size(head)
    limit = min(max_voxels, MAX_XRAY_PIXELS)
    if width == 0 or height == 0 or width * height > limit:
        raise InputRefused(
            f"{path.name}: the PNG declares {width} x {height} pixels, outside the limit of "
            f"{limit}"
        )
    if depth not in (8, 16):
        raise InputRefused(f"{path.name}: {depth}-bit PNG; 8- or 16-bit greyscale expected")
    arr = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if arr is None:
        raise InputRefused(f"{path.name}: the PNG image data cannot be decoded")
    if arr.ndim == 3:
        channels = arr[..., :3] if arr.shape[2] >= 3 else arr[..., :1]
        if not all(
            np.array_equal(channels[..., 0], channels[..., c]) for c in range(channels.shape[2])
        ):
            raise InputRefused(f"{path.name}: colour PNG; a greyscale X-ray is expected")
        arr = channels[..., 0]
    if arr.shape != (height, width):
        raise InputRefused(f"{path.name}: decoded size {arr.shape} differs from the header")
    return XrayData(
        pixels=arr.astype(np.float32),
        photometric="MONOCHROME2",
        geometry={
            "width": width,
            "height": height,
            "source_to_detector_mm": None,
            "source_to_patient_mm": None,
            "pixel_spacing_mm": None,
            "pixel_spacing_source": None,
            "primary_angle_deg": None,
            "secondary_angle_deg": None,
        },
        file_format="png",
        modality="",
        bits_stored=int(depth),
    )


def read_xray(
    path: Path | str | bytes,
    *,
    max_voxels: int = DEFAULT_MAX_VOXELS,
    flip_horizontal: bool = False,
    flip_vertical: bool = False,
    rotate_deg: int = 0,
) -> XrayData:
    """Read a DICOM (XA, RF, DX, CR) or 8/16-bit greyscale PNG X-ray (a path or the bytes).

    ``flip_horizontal``, ``flip_vertical`` and ``rotate_deg`` (a C-arm profile's flags) undo a
    device's stored mirroring/rotation: flips first, then a clockwise rotation; width/height
    and the pixel spacing follow a 90/270 degree rotation. Raises :class:`InputRefused` with a
    one-line message for anything else (other modalities, colour images, undecodable
    transfer syntaxes, forged sizes, damaged files).
    """
    data: bytes | None = None
    if isinstance(path, bytes | bytearray | memoryview):
        data = bytes(path)
        path = Path("image")
        head = data[:132]
    else:
        path = Path(path)
        if not path.is_file():
            raise InputRefused(f"{path.name or path} does not exist")
        with open(path, "rb") as fh:
            head = fh.read(132)
    if head[:8] == PNG_MAGIC:
        xray = _read_png(path, max_voxels=max_voxels, data=data)
    else:
        xray = _read_dicom(path, max_voxels=max_voxels, data=data)
    if flip_horizontal or flip_vertical or rotate_deg % 360:
        xray.pixels = reorient(
            xray.pixels,
            flip_horizontal=flip_horizontal,
            flip_vertical=flip_vertical,
            rotate_deg=rotate_deg,
        )
        geometry = dict(xray.geometry)
        geometry["height"], geometry["width"] = (int(n) for n in xray.pixels.shape)
        if rotate_deg % 180 and geometry.get("pixel_spacing_mm"):
            geometry["pixel_spacing_mm"] = list(reversed(geometry["pixel_spacing_mm"]))
        xray.geometry = geometry
        xray.notes.append(
            f"reoriented for the device (flip h={flip_horizontal}, v={flip_vertical}, "
            f"rotate {rotate_deg % 360} degrees clockwise)"
        )
    return xray


def reorient(
    pixels: np.ndarray, *, flip_horizontal: bool, flip_vertical: bool, rotate_deg: int
) -> np.ndarray:
    """Undo a device's stored mirroring/rotation (C-arm profile flags): flips first, then a
    clockwise rotation by ``rotate_deg`` (0, 90, 180, 270)."""
    out = pixels
    if flip_horizontal:
        out = out[:, ::-1]
    if flip_vertical:
        out = out[::-1, :]
    if rotate_deg % 360:
        if rotate_deg % 90:
            raise InputRefused(f"rotation {rotate_deg} is not a multiple of 90 degrees")
        out = np.rot90(out, k=-(rotate_deg // 90))
    return np.ascontiguousarray(out)
