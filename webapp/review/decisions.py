"""Reviewing a registration after surgery: accept or reject it with a comment, and measure
it against reviewer landmarks (a 2-D pixel picked on the X-ray paired with a 3-D CT point).

Frames: ``(u, v)`` pixels of the image the registration used; CT points in LPS mm.
"""

from __future__ import annotations

import math

import numpy as np
from django.utils import timezone

from webapp.core import audit
from webapp.xray_registration.models import LandmarkPair, Registration
from webapp.xray_registration.services import RegistrationRefused


def _audit(request, user, action: str, reg: Registration, obj, detail: str) -> None:
    """Audit one review action on ``reg`` (the event names its X-ray's patient)."""
    audit.record(request, action, patient=reg.xray.patient, obj=obj, detail=detail, user=user)


def review_registration(
    reg: Registration, user, decision: str, comment: str = "", request=None
) -> Registration:
    """Accept or reject ``reg`` with a comment (reviewers only; checked by the caller)."""
    if decision not in (Registration.Review.ACCEPTED, Registration.Review.REJECTED):
        raise RegistrationRefused("the decision must be 'accepted' or 'rejected'")
    if reg.status == Registration.Status.RUNNING:
        raise RegistrationRefused("the registration is still running")
    if decision == Registration.Review.REJECTED and not comment.strip():
        raise RegistrationRefused("say why the registration is rejected (comment)")
    reg.review_status = decision
    reg.review_comment = comment.strip()[:2000]
    reg.reviewed_by = user
    reg.reviewed_at = timezone.now()
    reg.save(update_fields=["review_status", "review_comment", "reviewed_by", "reviewed_at"])
    _audit(request, user, "update", reg, reg, f"registration {decision}: {comment.strip()[:200]}")
    return reg


def landmark_error(reg: Registration, u_px: float, v_px: float, xyz_mm) -> tuple[float, float]:
    """(error px, error mm at the detector) between the picked pixel and the projection of
    the CT point (LPS mm) with the registration's pose and camera."""
    from geometry.camera import Camera, project

    if reg.status != Registration.Status.OK or not reg.T_cam_from_world:
        raise RegistrationRefused("only a successful registration has a pose to measure")
    camera = Camera.from_json(reg.camera)
    T = np.asarray(reg.T_cam_from_world, dtype=np.float64)
    X = np.asarray(xyz_mm, dtype=np.float64).reshape(1, 3)
    if (X @ T[2, :3] + T[2, 3])[0] <= 0:
        raise RegistrationRefused("the CT point lies behind the X-ray source for this pose")
    uv = project(X, camera.K, T)[0]
    du, dv = float(uv[0] - u_px), float(uv[1] - v_px)
    sx, sy = camera.pixel_spacing_mm
    return math.hypot(du, dv), math.hypot(du * sx, dv * sy)


def add_landmark(
    reg: Registration, user, u_px: float, v_px: float, xyz_mm, request=None
) -> LandmarkPair:
    values = [float(u_px), float(v_px), *[float(x) for x in xyz_mm]]
    if len(values) != 5 or not all(math.isfinite(x) for x in values):
        raise RegistrationRefused("a landmark needs finite u, v (px) and x, y, z (LPS mm)")
    cam = reg.camera or {}
    W, H = cam.get("width", 0), cam.get("height", 0)
    if not (-0.5 <= values[0] <= W - 0.5 and -0.5 <= values[1] <= H - 0.5):
        raise RegistrationRefused(
            f"the 2D landmark ({values[0]:.1f}, {values[1]:.1f}) px is outside the {W}x{H} image"
        )
    err_px, err_mm = landmark_error(reg, values[0], values[1], values[2:])
    pair = LandmarkPair.objects.create(
        registration=reg,
        u_px=values[0],
        v_px=values[1],
        x_mm=values[2],
        y_mm=values[3],
        z_mm=values[4],
        error_px=err_px,
        error_mm_at_detector=err_mm,
        created_by=user,
    )
    _audit(request, user, "create", reg, pair, f"landmark on registration {reg.pk}: {err_px:.2f} px")
    return pair
