"""One path from a stored X-ray to the pixels a viewer at the source sees, their camera and
their display image. Every page, job and command that shows or registers a stored X-ray
goes through here; nothing else opens ``XrayImage.original_file`` / ``dewarped_file`` for
pixels.

Rules (docs/CONVENTIONS.md, "C-arm camera model"):

1. The C-arm's device flags (``flip_horizontal``, ``flip_vertical``, ``rotate_deg``) are
   applied to the stored original when it is read
   (:func:`webapp.records.xray_import.load_xray_image`, the only reader of originals).
2. The calibration profile is chosen in one place
   (:func:`webapp.calibration.services.profile_for_xray`: the C-arm's active profile nearest to the
   shot's angles). A profile may have found a mirror of its own (``flip_horizontal`` in its
   data); its ``K`` describes the image after that mirror, so it is applied too.
3. An image intensifier's image is the dewarped one (written by
   :func:`webapp.calibration.services.dewarp_xray` from rules 1-2 plus the distortion polynomial);
   a flat panel's is the re-oriented original (rules 1-2).
4. Camera: the chosen profile's intrinsics, else the header geometry (SDD, pixel spacing,
   principal point at the image centre), rescaled to the pixel grid when needed.
5. Display: window 0.5-99.5 percentiles inside the exposed field only (a black collimated
   border does not flatten the contrast); MONOCHROME1 is shown inverted so that higher
   attenuation looks the same on every page.

Pixels are float32 ``(H, W)`` stored values (their photometric meaning kept); ``(u, v)`` =
(column, row), top-left pixel centre ``(0, 0)``.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import Literal

import numpy as np
from django.core.cache import cache

from dicomio import InputRefused, read_xray
from geometry.camera import Camera
from registration.engine.overlay import display_image
from webapp.calibration.models import CalibrationProfile
from webapp.calibration.services import profile_for_xray
from webapp.records.models import XrayImage
from webapp.records.xray_import import load_xray_image

log = logging.getLogger(__name__)

Stage = Literal["auto", "reoriented", "dewarped"]
PNG_CACHE_S = 600


class XrayUnavailable(InputRefused):
    """The stored X-ray cannot be shown or registered; the message says why in one line."""


@dataclass(frozen=True)
class XrayView:
    """The image a viewer at the source sees, ready for display or registration."""

    pixels: np.ndarray  # float32 (H, W) stored values, read-only
    photometric: str  # MONOCHROME1 | MONOCHROME2 of ``pixels``
    bits_stored: int | None
    dewarped: bool
    profile: CalibrationProfile | None  # the profile whose K describes ``pixels``, if any


@dataclass(frozen=True)
class XrayCamera:
    """The pinhole camera of an :class:`XrayView` and where it came from."""

    camera: Camera
    source: str  # a sentence fragment for the user
    calibrated: bool


def calibration_profile(xray: XrayImage) -> CalibrationProfile | None:
    """The profile that describes ``xray`` (rule 2), or None when there is none with ``K``."""
    profile = profile_for_xray(xray).profile
    if profile is None or not isinstance(profile.data, dict) or not profile.data.get("K"):
        return None
    return profile


def needs_dewarping(xray: XrayImage) -> bool:
    return bool(xray.carm is not None and xray.carm.needs_dewarping)


def dewarped_is_current(xray: XrayImage, profile: CalibrationProfile | None) -> bool:
    """True when the stored dewarped image was made with ``profile`` (the one chosen now)."""
    if not xray.dewarped_file:
        return False
    made_with = (xray.dewarp_info or {}).get("profile_id")
    return profile is None or made_with is None or made_with == profile.pk


def read_view(xray: XrayImage, *, stage: Stage = "auto") -> XrayView:
    """The pixels of ``xray`` as a viewer at the source sees them (module rules 1-3).

    ``stage``: ``"auto"`` (dewarped for an image intensifier when its dewarped image exists,
    else re-oriented), ``"reoriented"`` (never dewarped) or ``"dewarped"`` (refused when
    missing). Raises :class:`XrayUnavailable`.
    """
    profile = calibration_profile(xray)
    use_dewarped = stage == "dewarped" or (
        stage == "auto" and needs_dewarping(xray) and bool(xray.dewarped_file)
    )
    if use_dewarped:
        if not xray.dewarped_file:
            raise XrayUnavailable(f"X-ray #{xray.pk} has no dewarped image")
        pixels, photometric, bits = _read_dewarped(xray)
        return XrayView(_frozen(pixels), photometric, bits, True, profile)
    try:
        data = load_xray_image(xray)
    except InputRefused as exc:
        raise XrayUnavailable(f"the stored X-ray cannot be read: {exc.message}") from None
    except OSError as exc:
        raise XrayUnavailable(f"the stored X-ray file is missing ({type(exc).__name__})") from None
    pixels = np.asarray(data.pixels, dtype=np.float32)
    if profile is not None and profile.data.get("flip_horizontal"):
        pixels = pixels[:, ::-1]
    photometric = xray.photometric_interpretation or data.photometric or "MONOCHROME2"
    return XrayView(_frozen(pixels), photometric, data.bits_stored or xray.bits_stored, False,
                    profile)


def _read_dewarped(xray: XrayImage) -> tuple[np.ndarray, str, int | None]:
    """The dewarped 16-bit PNG: already re-oriented and mirrored by its profile."""
    try:
        with xray.dewarped_file.open("rb") as handle:
            raw = handle.read()
        data = read_xray(raw)
    except InputRefused as exc:
        raise XrayUnavailable(f"the dewarped image cannot be read: {exc.message}") from None
    except OSError as exc:
        raise XrayUnavailable(f"the dewarped image is missing ({type(exc).__name__})") from None
    photometric = xray.photometric_interpretation or "MONOCHROME2"
    return np.asarray(data.pixels, dtype=np.float32), photometric, data.bits_stored


def _frozen(pixels: np.ndarray) -> np.ndarray:
    pixels = np.ascontiguousarray(pixels, dtype=np.float32)
    pixels.setflags(write=False)
    return pixels


# --------------------------------------------------------------------------- camera
def view_size(xray: XrayImage) -> tuple[int, int]:
    """``(width, height)`` of the re-oriented image without reading it (a 90/270 degree
    device rotation swaps the stored columns and rows)."""
    rotate = int(xray.carm.rotate_deg) if xray.carm is not None else 0
    if rotate % 180:
        return int(xray.rows), int(xray.cols)
    return int(xray.cols), int(xray.rows)


def camera_for_xray(
    xray: XrayImage, *, width: int | None = None, height: int | None = None
) -> XrayCamera:
    """The camera of ``xray``'s viewed pixel grid (``width x height``, default
    :func:`view_size`): the chosen profile's intrinsics, else the header geometry.
    Raises :class:`XrayUnavailable` when neither exists or the aspect ratio disagrees."""
    if width is None or height is None:
        width, height = view_size(xray)
    found = _profile_camera(xray) or _header_camera(xray)
    if found is None:
        raise XrayUnavailable(
            f"X-ray #{xray.pk} has no calibration profile and no source-to-detector distance or "
            "pixel spacing: its camera geometry is unknown"
        )
    camera = found.camera
    if (camera.width, camera.height) != (width, height):
        if abs(camera.width / camera.height - width / height) > 0.01 * (width / height):
            raise XrayUnavailable(
                f"the X-ray is {width}x{height} pixels but its {found.source} is "
                f"{camera.width}x{camera.height} with another aspect ratio"
            )
        camera = camera.scaled(width, height)
    return XrayCamera(camera, found.source, found.calibrated)


def _profile_camera(xray: XrayImage) -> XrayCamera | None:
    profile = calibration_profile(xray)
    if profile is None:
        return None
    try:
        camera = Camera.from_profile(profile.data)
    except ValueError:
        log.warning("calibration profile %s has no usable intrinsics", profile.pk)
        return None
    return XrayCamera(camera, f"calibration profile {profile.carm.name} v{profile.version}", True)


def _header_camera(xray: XrayImage) -> XrayCamera | None:
    """Camera from the X-ray header (or its C-arm's) geometry, on the re-oriented grid."""
    carm = xray.carm
    sdd = xray.distance_source_to_detector_mm or (carm.source_to_detector_mm if carm else None)
    sx, sy = xray.pixel_spacing_x_mm, xray.pixel_spacing_y_mm
    if not (sx and sy) and carm is not None:
        sx, sy = carm.pixel_spacing_x_mm, carm.pixel_spacing_y_mm
    if not (sdd and sx and sy):
        return None
    width, height = view_size(xray)
    if (width, height) != (int(xray.cols), int(xray.rows)):
        sx, sy = sy, sx
    camera = Camera.from_geometry(width, height, float(sdd), float(sx), float(sy))
    source = "image header (SDD and pixel spacing, principal point at the image centre)"
    return XrayCamera(camera, source, False)


# --------------------------------------------------------------------------- display
def display_uint8(pixels: np.ndarray, photometric: str = "MONOCHROME2") -> np.ndarray:
    """8-bit display (module rule 5, :func:`registration.engine.overlay.display_image`):
    window 0.5-99.5 % inside the exposed field, MONOCHROME1 inverted."""
    values = np.asarray(pixels, dtype=np.float32)
    if values.ndim != 2:
        raise XrayUnavailable(f"the X-ray is not a single greyscale frame (shape {values.shape})")
    if not np.isfinite(values).any():
        raise XrayUnavailable("the X-ray has no finite pixels")
    return display_image(values, invert=photometric.upper() == "MONOCHROME1")


def display_png(pixels: np.ndarray, photometric: str = "MONOCHROME2", *,
                max_side: int | None = None) -> bytes:
    """:func:`display_uint8` as PNG bytes, shrunk to ``max_side`` pixels when given."""
    import cv2

    image = display_uint8(pixels, photometric)
    rows, cols = image.shape
    if max_side is not None and max(rows, cols) > max_side:
        factor = max(rows, cols) / float(max_side)
        size = (max(1, round(cols / factor)), max(1, round(rows / factor)))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    ok, encoded = cv2.imencode(".png", image)
    if not ok:
        raise XrayUnavailable("the X-ray picture could not be encoded as PNG")
    return encoded.tobytes()


def view_png(xray: XrayImage, *, stage: Stage = "auto", max_side: int | None = None) -> bytes:
    """The display PNG of ``xray`` as a viewer at the source sees it. Kept in Django's cache
    (``PNG_CACHE_S`` seconds) under a key made of everything that decides its pixels, so a
    page polled by a whole team decodes, windows and encodes each X-ray once."""
    key = _png_cache_key(xray, stage=stage, max_side=max_side)
    cached = cache.get(key)
    if isinstance(cached, bytes):
        return cached
    view = read_view(xray, stage=stage)
    png = display_png(view.pixels, view.photometric, max_side=max_side)
    cache.set(key, png, PNG_CACHE_S)
    return png


def _png_cache_key(xray: XrayImage, *, stage: Stage, max_side: int | None) -> str:
    """The stored files, the C-arm's orientation flags, the chosen profile (and its own
    mirror), the photometric interpretation, the stage and the size, hashed."""
    carm = xray.carm
    profile = calibration_profile(xray)
    parts = (
        xray.pk, xray.original_file.name, xray.dewarped_file.name or "",
        (xray.dewarp_info or {}).get("profile_id"), xray.photometric_interpretation,
        (carm.flip_horizontal, carm.flip_vertical, carm.rotate_deg, carm.needs_dewarping)
        if carm is not None else None,
        (profile.pk, bool(profile.data.get("flip_horizontal"))) if profile is not None else None,
        stage, max_side,
    )
    return "xray-view-png:" + hashlib.sha256(repr(parts).encode()).hexdigest()
