"""The expected projection of a phantom before its first calibration (no Django imports).

A nominal C-arm camera (:class:`geometry.camera.Camera`): source ``NOMINAL_SDD_MM`` above
the detector, principal point at the image centre, square pixels. The phantom lies as
its ``phantom.json`` says (detector frame, mm); a grid plate lies on the detector with
its markers over ``design.extent_mm`` (else ``DEFAULT_PLATE_EXTENT_MM``). Beads are drawn
dark on a bright field, holes bright in a dark plate, as in a raw image.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from calibration.engine.phantom import Phantom, phantom_from_dict
from calibration.phantom_design import lattice_points
from geometry.camera import Camera, project
from refusal import Refused

NOMINAL_SDD_MM = 1000.0
DETECTOR_MM = 300.0
DEFAULT_PLATE_EXTENT_MM = 200.0
PREVIEW_PX = 768
MIN_PITCH_PX = 7.0

SMALL, CODED, FAR = 0, 1, 2
MAX_HEIGHT_FRACTION = 0.9  # markers higher than this x SDD above the detector are refused


class PreviewError(Refused):
    """The phantom cannot be shown through the nominal camera; the message says why."""


@dataclass(frozen=True)
class Projection:
    """Markers of a phantom as the nominal camera sees them (those inside the image)."""

    camera: Camera
    uv: np.ndarray  # (N, 2) pixels
    radius_px: np.ndarray  # (N,)
    role: np.ndarray  # (N,) SMALL, CODED (larger near bead) or FAR
    marker: str  # "bead" or "hole"
    plate_radius_px: float  # holes: the plate's outline; 0 for beads
    field_mm: float  # detector width shown

    def __len__(self) -> int:
        return len(self.uv)


def _markers(phantom: Phantom, definition: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """``(xyz (N, 3) mm, diameter (N,), role (N,), pitch mm)`` of every marker."""
    if phantom.grid is not None:
        g = phantom.grid
        design = definition.get("design") if isinstance(definition.get("design"), dict) else {}
        extent = design.get("extent_mm", DEFAULT_PLATE_EXTENT_MM)
        if isinstance(extent, bool) or not isinstance(extent, (int, float)) or not 10 <= extent <= 500:
            extent = DEFAULT_PLATE_EXTENT_MM
        xy, _ = lattice_points(g.lattice, g.pitch_mm, float(extent) / 2)
        xyz = np.column_stack([xy, np.zeros(len(xy))])
        return xyz, np.full(len(xy), g.diameter_mm), np.full(len(xy), SMALL), g.pitch_mm
    xyz, diam, planes = phantom.xyz, phantom.diameters, phantom.planes
    near = planes == 0
    role = np.where(near, SMALL, FAR)
    dmin, dmax = float(diam[near].min()), float(diam[near].max())
    if dmax >= 1.3 * dmin:
        role[near & (diam > np.sqrt(dmin * dmax))] = CODED
    xy = xyz[near, :2]
    dist = np.linalg.norm(xy[:, None] - xy[None], axis=2)
    np.fill_diagonal(dist, np.inf)
    return xyz, diam, role, float(np.median(dist.min(axis=1)))


def project_phantom(definition: dict, *, size_px: int = PREVIEW_PX) -> Projection:
    """Project ``definition`` (validated by the engine's parser, which may refuse it;
    :class:`PreviewError` for markers near or beyond the nominal source).

    The view covers the phantom's projection (at most ``DETECTOR_MM``), or less when that
    would draw the pitch under ``MIN_PITCH_PX`` pixels (the centre is shown then)."""
    phantom = phantom_from_dict(definition)
    xyz, diam, role, pitch = _markers(phantom, definition)
    highest = float(-xyz[:, 2].min())
    if highest >= MAX_HEIGHT_FRACTION * NOMINAL_SDD_MM:
        raise PreviewError(
            f"a marker lies {highest:g} mm above the detector, too near the nominal source "
            f"({NOMINAL_SDD_MM:g} mm) to preview: check the z of the beads (mm, detector frame)"
        )
    mag = NOMINAL_SDD_MM / (NOMINAL_SDD_MM + xyz[:, 2])
    reach = float(np.max(np.hypot(xyz[:, 0], xyz[:, 1]) * mag + diam * mag))
    field = min(DETECTOR_MM, 2 * reach + 2 * pitch)
    spacing = min(field / size_px, pitch * float(mag.min()) / MIN_PITCH_PX)
    camera = Camera.from_geometry(size_px, size_px, NOMINAL_SDD_MM, spacing, spacing)
    T = np.eye(4)
    T[2, 3] = NOMINAL_SDD_MM  # detector frame -> camera frame: the source at z = -SDD
    uv = project(xyz, camera.K, T)
    radius = diam / 2 * mag / spacing
    inside = np.all((uv >= -0.5) & (uv <= size_px - 0.5), axis=1)
    plate_r = 0.0
    if phantom.grid is not None and phantom.grid.marker == "hole":
        plate_r = (reach + pitch / 2) / spacing
    return Projection(
        camera, uv[inside], radius[inside], role[inside],
        phantom.grid.marker if phantom.grid is not None else "bead", plate_r, size_px * spacing,
    )  # fmt: skip


def render_projection(proj: Projection) -> np.ndarray:
    """uint8 (H, W) picture of the projection: dark beads on a bright field (far beads
    a little lighter), or bright holes in a dark plate."""
    h, w = proj.camera.height, proj.camera.width
    holes = proj.marker == "hole"
    img = np.full((h, w), 225, np.uint8)
    shift = 4
    scale = 1 << shift
    if holes:
        centre = (round((w - 1) / 2 * scale), round((h - 1) / 2 * scale))
        cv2.circle(img, centre, round(proj.plate_radius_px * scale), 55, -1, cv2.LINE_AA, shift)
    # far beads first, so that near beads stay whole where they overlap
    order = np.argsort(proj.role != FAR, kind="stable")
    for k in order:
        u, v = proj.uv[k]
        shade = 225 if holes else (95 if proj.role[k] == FAR else 35)
        r = max(1.0, float(proj.radius_px[k]))
        cv2.circle(img, (round(u * scale), round(v * scale)), round(r * scale), shade, -1, cv2.LINE_AA, shift)
    return img


def preview_png(definition: dict, *, size_px: int = PREVIEW_PX) -> bytes:
    """PNG bytes of :func:`render_projection` for ``definition``."""
    ok, buf = cv2.imencode(".png", render_projection(project_phantom(definition, size_px=size_px)))
    if not ok:
        raise ValueError("the phantom preview could not be encoded as PNG")
    return buf.tobytes()
