"""Calibration services: built-in phantoms, starting a calibration, review (activate /
reject), choosing the profile for an X-ray, and dewarping an X-ray with it.

Profiles are per C-arm and per C-arm angle: activating one retires the active profile of
the same C-arm at (about) the same angle. An X-ray uses the active profile of its C-arm
nearest to its angle, with a warning when none is within ``ANGLE_WARN_DEG``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from calibration.engine.phantom import PHANTOM_DIR, PhantomError, phantom_from_dict
from calibration.phantom_design import PhantomDesign, draw_phantom
from calibration.refused_attempt import advice_for, attempt_detections
from dicomio import read_xray, zero_preamble
from refusal import Refused
from webapp.calibration.models import CalibrationProfile, Phantom
from webapp.calibration.profile_data import active_profiles
from webapp.core import audit
from webapp.records.models import CArm, XrayImage

SAME_ANGLE_DEG = 1.0
MAX_PHANTOM_BEADS = 3000  # the parser and the identification compare every pair of beads
ANGLE_WARN_DEG = 10.0


class CalibrationRefused(Refused):
    """A calibration request was refused; the message says why. ``attempt`` holds what
    the refused calibration detected (:func:`calibration.refused_attempt.attempt_detections`)."""

    def __init__(self, message: object = "", *, attempt: dict | None = None) -> None:
        super().__init__(message)
        self.attempt = attempt or {}


def ensure_builtin_phantoms() -> list[Phantom]:
    """Create or update the phantom rows for the JSON files shipped in calibration/phantoms."""
    rows = []
    for path in sorted(Path(PHANTOM_DIR).glob("*.json")):
        definition = json.loads(path.read_text())
        row, _ = Phantom.objects.update_or_create(
            name=definition["name"], defaults={"definition": definition, "builtin": True}
        )
        rows.append(row)
    return rows


def create_phantom(name: str, definition: dict, user=None, *, request=None, how: str = "uploaded") -> Phantom:
    """Validate an admin's phantom definition (phantom.json of CONVENTIONS.md, bead list
    or ``grid`` plate), store it under ``name`` and audit it. Raises CalibrationRefused
    (nothing stored) for a definition the engine refuses or a name already taken."""
    name = (name or "").strip()
    if not name:
        raise CalibrationRefused("the phantom needs a name")
    definition = dict(definition, name=name) if isinstance(definition, dict) else definition
    beads = definition.get("beads") if isinstance(definition, dict) else None
    if isinstance(beads, list) and len(beads) > MAX_PHANTOM_BEADS:
        raise CalibrationRefused(
            f"phantom definition refused: it lists {len(beads)} beads; at most {MAX_PHANTOM_BEADS} are accepted"
        )
    try:
        phantom_from_dict(definition)
    except PhantomError as exc:
        raise CalibrationRefused(f"phantom definition refused: {exc}") from None
    if Phantom.objects.filter(name=name).exists():
        raise CalibrationRefused(f"a phantom named {name!r} already exists: choose another name")
    phantom = Phantom.objects.create(name=name, definition=definition, created_by=user)
    audit.record(request, "create", obj=phantom, detail=f"{how} phantom {name} ({phantom.summary})", user=user)
    return phantom


def create_drawn_phantom(*, design: PhantomDesign, user=None, request=None) -> Phantom:
    """Draw a phantom from ``design`` (:mod:`calibration.phantom_design`), then validate,
    store and audit it as an upload is. Raises CalibrationRefused."""
    try:
        definition = draw_phantom(design)
    except Refused as exc:
        raise CalibrationRefused(f"phantom drawing refused: {exc}") from None
    return create_phantom(definition["name"], definition, user, request=request, how="drew")


def angle_distance_deg(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Distance between two (primary, secondary) C-arm angle pairs, degrees."""
    return math.hypot(a[0] - b[0], a[1] - b[1])


def _is_dicom(raw: bytes) -> bool:
    return len(raw) > 132 and raw[128:132] == b"DICM"


@transaction.atomic
def start_calibration(
    carm: CArm,
    phantom: Phantom,
    image_bytes: bytes,
    *,
    primary_angle_deg: float = 0.0,
    secondary_angle_deg: float = 0.0,
    pixel_spacing_mm: tuple[float, float] | None = None,
    user=None,
    request=None,
) -> CalibrationProfile:
    """Store the phantom image, create a profile row (status computing) and queue the job."""
    from webapp.jobs.services import submit_job

    if not image_bytes:
        raise CalibrationRefused("the phantom image file is empty")
    is_dicom = _is_dicom(image_bytes)
    if not is_dicom and not image_bytes.startswith(b"\x89PNG"):
        raise CalibrationRefused("the phantom image must be a DICOM file or a PNG")
    spacing = pixel_spacing_mm
    if spacing is None and carm.pixel_spacing_x_mm and carm.pixel_spacing_y_mm:
        spacing = (carm.pixel_spacing_x_mm, carm.pixel_spacing_y_mm)
    if not is_dicom and spacing is None:
        raise CalibrationRefused("a PNG phantom image needs the detector pixel spacing (sx, sy)")
    if is_dicom:
        image_bytes = zero_preamble(image_bytes)
    version = (carm.profiles.aggregate(v=Max("version"))["v"] or 0) + 1
    profile = CalibrationProfile(
        carm=carm,
        version=version,
        phantom=phantom,
        primary_angle_deg=float(primary_angle_deg),
        secondary_angle_deg=float(secondary_angle_deg),
        calibrated_by=user,
    )
    suffix = ".dcm" if is_dicom else ".png"
    profile.image_file.save(f"phantom{suffix}", ContentFile(image_bytes), save=False)
    profile.save()
    params = {"profile_id": profile.pk}
    if spacing is not None:
        params["pixel_spacing_mm"] = [float(spacing[0]), float(spacing[1])]
    job = submit_job("calibrate_carm", params=params, user=user, request=request)
    profile.message = f"queued as job #{job.pk}"
    profile.save(update_fields=["message"])
    return profile


def run_calibration(profile: CalibrationProfile, pixel_spacing_mm=None) -> CalibrationProfile:
    """Compute a profile from its stored image (worker side). Raises CalibrationRefused."""
    from calibration.engine.calibrate import CalibrationError, calibrate

    phantom_def = profile.phantom.definition if profile.phantom else None
    if phantom_def is None:
        raise CalibrationRefused("the profile has no phantom")
    try:
        phantom = phantom_from_dict(phantom_def)
    except PhantomError as exc:
        raise CalibrationRefused(f"phantom definition refused: {exc}") from None
    suffix = Path(profile.image_file.name).suffix or ".img"
    carm = profile.carm
    with default_storage.open(profile.image_file.name, "rb") as src:
        raw = src.read()
    # The device's stored mirroring/rotation is undone at reading, exactly as for its
    # X-rays, so the profile maps images as the viewer at the source sees them.
    try:
        loaded = read_xray(
            raw,
            flip_horizontal=carm.flip_horizontal,
            flip_vertical=carm.flip_vertical,
            rotate_deg=int(carm.rotate_deg),
        )
    except ValueError as exc:
        raise CalibrationRefused(str(exc)) from None
    spacing = tuple(pixel_spacing_mm) if pixel_spacing_mm else loaded.geometry.get("pixel_spacing_mm")
    if not spacing:
        raise CalibrationRefused("the phantom image has no pixel spacing and none was given")
    pixels = np.asarray(loaded.pixels)
    metadata = {
        "device": carm.name,
        "primary_angle_deg": profile.primary_angle_deg,
        "secondary_angle_deg": profile.secondary_angle_deg,
        "calibrated_by": profile.calibrated_by.username if profile.calibrated_by else None,
        "image": f"profile-{profile.pk}{suffix}",
    }
    extra = {}
    if phantom.is_grid_plate:
        # a plate gives the distortion alone: the source is nominal, at the header's
        # source-to-detector distance or else the C-arm's
        header_sdd = (loaded.geometry or {}).get("source_to_detector_mm")
        if header_sdd:
            extra = {"sdd_mm": float(header_sdd), "sdd_origin": "DICOM DistanceSourceToDetector"}
        elif carm.source_to_detector_mm:
            extra = {"sdd_mm": float(carm.source_to_detector_mm), "sdd_origin": f"C-arm {carm.name}"}
        else:
            raise CalibrationRefused(
                f"a grid plate gives no source distance, and neither the image header nor C-arm "
                f"{carm.name} has one: enter the C-arm's source-to-detector distance first"
            )
        extra["photometric"] = loaded.photometric
    try:
        result = calibrate(pixels, phantom, spacing, metadata=metadata, **extra)
    except CalibrationError as exc:
        attempt = attempt_detections(pixels, phantom, spacing, photometric=loaded.photometric)
        raise CalibrationRefused(str(exc), attempt=attempt) from None
    data = dict(result.profile)
    data["device_flags_applied"] = {
        "flip_horizontal": bool(carm.flip_horizontal),
        "flip_vertical": bool(carm.flip_vertical),
        "rotate_deg": int(carm.rotate_deg),
    }
    profile.data = data
    profile.rms_px = data["residuals_px"]["rms"]
    profile.max_px = data["residuals_px"]["max"]
    profile.rms_mm = data["residuals_mm"]["rms"]
    profile.beads_used = data["beads_used"]
    profile.status = CalibrationProfile.Status.DRAFT
    what = "plate markers (distortion only, nominal source)" if phantom.is_grid_plate else "beads"
    profile.message = (
        f"{data['beads_used']} {what}, residual RMS {profile.rms_mm:.3f} mm; awaiting review"
    )
    profile.save()
    return profile


def record_refusal(profile: CalibrationProfile, refusal: CalibrationRefused) -> None:
    """Mark ``profile`` failed with the reason, what to try and what was detected, in
    one save (the profile keeps no model)."""
    attempt = dict(getattr(refusal, "attempt", None) or {})
    attempt["advice"] = advice_for(str(refusal))
    profile.status = CalibrationProfile.Status.FAILED
    profile.message = str(refusal)[:500]
    profile.attempt = attempt
    profile.save(update_fields=["status", "message", "attempt"])


@transaction.atomic
def activate_profile(profile: CalibrationProfile, user, comment: str = "", request=None) -> None:
    """Make a reviewed profile active; the active one at the same angle is retired."""
    if profile.status not in (CalibrationProfile.Status.DRAFT, CalibrationProfile.Status.RETIRED):
        raise CalibrationRefused(f"a {profile.get_status_display().lower()} profile cannot be activated")
    same_angle = [
        other
        for other in profile.carm.profiles.select_for_update().filter(status=CalibrationProfile.Status.ACTIVE)
        if angle_distance_deg(
            (other.primary_angle_deg, other.secondary_angle_deg),
            (profile.primary_angle_deg, profile.secondary_angle_deg),
        )
        <= SAME_ANGLE_DEG
    ]
    for other in same_angle:
        other.status = CalibrationProfile.Status.RETIRED
        other.save(update_fields=["status"])
    _record_review(profile, CalibrationProfile.Status.ACTIVE, user, comment, request, "activated")


def reject_profile(profile: CalibrationProfile, user, comment: str = "", request=None) -> None:
    if profile.status != CalibrationProfile.Status.DRAFT:
        raise CalibrationRefused("only a profile awaiting review can be rejected")
    _record_review(profile, CalibrationProfile.Status.REJECTED, user, comment, request, "rejected")


def _record_review(profile: CalibrationProfile, status: str, user, comment: str, request, verb: str) -> None:
    """Store a review decision (status, who, when, comment) and audit it."""
    profile.status = status
    profile.reviewed_by = user
    profile.reviewed_at = timezone.now()
    profile.review_comment = comment[:500]
    profile.save()
    audit.record(request, "update", obj=profile, detail=f"{verb} {profile}", user=user)


@dataclass(frozen=True)
class ProfileChoice:
    profile: CalibrationProfile | None
    angle_distance_deg: float | None
    warning: str


def profile_for_angles(carm: CArm, primary: float | None, secondary: float | None) -> ProfileChoice:
    """The active profile of ``carm`` nearest to the given C-arm angles."""
    active = active_profiles(carm)
    if not active:
        return ProfileChoice(None, None, f"C-arm {carm.name} has no active calibration profile")
    angles = (primary or 0.0, secondary or 0.0)
    best = min(active, key=lambda p: angle_distance_deg((p.primary_angle_deg, p.secondary_angle_deg), angles))
    dist = angle_distance_deg((best.primary_angle_deg, best.secondary_angle_deg), angles)
    warning = ""
    if primary is None or secondary is None:
        warning = "the X-ray does not record its C-arm angles; the profile at 0°/0° or nearest was used"
    elif dist > ANGLE_WARN_DEG:
        warning = (
            f"nearest calibration (v{best.version} at {best.primary_angle_deg:.0f}°/"
            f"{best.secondary_angle_deg:.0f}°) is {dist:.0f}° from this X-ray's angle"
        )
    return ProfileChoice(best, dist, warning)


def profile_for_xray(xray: XrayImage) -> ProfileChoice:
    if xray.carm is None:
        return ProfileChoice(None, None, "the X-ray has no C-arm, so no calibration applies")
    return profile_for_angles(xray.carm, xray.primary_angle_deg, xray.secondary_angle_deg)


def dewarp_xray(xray: XrayImage) -> dict:
    """Dewarp an image-intensifier X-ray with its C-arm's nearest active profile and
    store the result as a 16-bit PNG. Flat panels are not dewarped; their intrinsics
    still come from the profile. Returns what was done (stored on ``xray.dewarp_info``)."""
    from calibration.engine.dewarp import ProfileError, dewarp_image
    from calibration.engine.io import to_uint16
    from webapp.records.xray_import import ImportRefused, load_xray_image

    choice = profile_for_xray(xray)
    if choice.profile is None:
        raise CalibrationRefused(choice.warning)
    profile = choice.profile
    info = {
        "profile_id": profile.pk,
        "profile_version": profile.version,
        "carm": xray.carm.name,
        "angle_distance_deg": round(choice.angle_distance_deg or 0.0, 2),
        "warning": choice.warning,
        "K": profile.data.get("K"),
        "dewarped": False,
    }
    if not xray.carm.needs_dewarping:
        info["note"] = "flat-panel detector: no dewarping, intrinsics from the profile"
    else:
        try:
            pixels = np.asarray(load_xray_image(xray).pixels)
        except ImportRefused as exc:
            raise CalibrationRefused(str(exc)) from None
        try:
            out = dewarp_image(pixels, profile.data)
        except ProfileError as exc:
            raise CalibrationRefused(str(exc)) from None
        ok, buf = cv2.imencode(".png", to_uint16(out))
        if not ok:
            raise CalibrationRefused("could not encode the dewarped image")
        if xray.dewarped_file:
            xray.dewarped_file.delete(save=False)
        xray.dewarped_file.save("dewarped.png", ContentFile(buf.tobytes()), save=False)
        info["dewarped"] = True
    xray.dewarp_info = info
    xray.save(update_fields=["dewarped_file", "dewarp_info"])
    return info
