"""The X-ray a registration uses: its pixels and camera through the one X-ray path
(:mod:`webapp.xray_view`), dewarped first when its C-arm needs it, and the camera to train
with. Frames: ``(u, v)`` = (column, row) of the viewed (dewarped) image."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from webapp.records.models import CTStudy, XrayImage
from webapp.xray_registration.services.common import RegistrationRefused, one_line
from webapp.xray_view import (
    XrayUnavailable,
    calibration_profile,
    camera_for_xray,
    dewarped_is_current,
    display_png,
    needs_dewarping,
    read_view,
)

# Camera used to train when the patient has no calibrated or described C-arm image yet:
# a 1000 mm source-to-detector C-arm with a 30 cm field of view on 512 x 512 pixels.
DEFAULT_CAMERA = {"width": 512, "height": 512, "source_to_detector_mm": 1000.0, "spacing_mm": 0.6}


def xray_camera(xray: XrayImage, width: int, height: int):
    """The camera of ``xray``'s viewed pixel grid ``width x height`` (one rule for every
    page and job: :func:`webapp.xray_view.camera_for_xray`). Raises
    :class:`RegistrationRefused` when it is unknown."""
    try:
        return camera_for_xray(xray, width=width, height=height).camera
    except XrayUnavailable as exc:
        raise RegistrationRefused(exc.message) from None


def training_camera(study: CTStudy):
    """The camera to train with: the patient's latest X-ray with a calibrated or described
    C-arm geometry, else :data:`DEFAULT_CAMERA`."""
    from geometry.camera import Camera

    for xray in study.patient.xrays.select_related("carm").order_by("-created_at"):
        try:
            return camera_for_xray(xray).camera
        except XrayUnavailable:
            continue
    d = DEFAULT_CAMERA
    return Camera.from_geometry(
        d["width"], d["height"], d["source_to_detector_mm"], d["spacing_mm"], d["spacing_mm"]
    )


@dataclass
class PreparedXray:
    pixels: np.ndarray  # (H, W) stored values as a viewer at the source sees them
    photometric: str
    bits_stored: int | None
    camera: object  # geometry.camera.Camera
    dewarped: bool


def prepare_xray(xray: XrayImage, *, dewarp: bool = True) -> PreparedXray:
    """The pixels that register and their camera (:mod:`webapp.xray_view`): an image
    intensifier's shot is dewarped first (again when its profile changed) unless
    ``dewarp`` is False, in which case a missing dewarped image is refused."""
    from webapp.calibration.services import CalibrationRefused, dewarp_xray

    if needs_dewarping(xray) and not dewarped_is_current(xray, calibration_profile(xray)):
        if not dewarp:
            raise RegistrationRefused("the dewarped image is missing")
        try:
            dewarp_xray(xray)
        except CalibrationRefused as exc:
            raise RegistrationRefused(
                "the X-ray comes from an image intensifier and must be dewarped first, but: "
                f"{one_line(exc)}"
            ) from None
    try:
        view = read_view(xray)
    except XrayUnavailable as exc:
        raise RegistrationRefused(f"cannot read the X-ray: {exc.message}") from None
    camera = xray_camera(xray, view.pixels.shape[1], view.pixels.shape[0])
    return PreparedXray(
        pixels=view.pixels,
        photometric=view.photometric,
        bits_stored=view.bits_stored,
        camera=camera,
        dewarped=view.dewarped,
    )


def xray_display_png(pixels: np.ndarray, photometric: str) -> bytes:
    """The registered X-ray as an 8-bit PNG at its own size (the one display rule)."""
    try:
        return display_png(pixels, photometric)
    except XrayUnavailable as exc:
        raise RegistrationRefused(exc.message) from None
