"""C-arm angles <-> poses (no Django imports).

A pose is ``T_cam_from_world`` (4x4): LPS world mm -> camera mm (camera axes as in
docs/CONVENTIONS.md: +x columns, +y rows, +z source -> detector).

C-arm angle convention used by :func:`carm_pose` (patient supine, head first):

* LAO = RAO = 0 and cranial = caudal = 0 is the AP view: the source is posterior
  (under the table), the detector anterior, so the viewing direction (camera +z) is
  ``-y`` (anterior) in LPS. Image rows run toward the feet (camera +y = ``-z``, inferior)
  and image columns toward the patient's right (camera +x = ``-x``), which is the
  image a viewer at the source sees.
* ``lao_deg`` > 0: LAO, the detector swings toward the patient's left (at LAO 90 the
  view direction is ``+x``, the source is on the patient's right). RAO is negative.
* ``cranial_deg`` > 0: cranial, the detector tilts toward the head (the view direction
  gains a ``+z`` component). Caudal is negative.
* ``in_plane_deg``: rotation of the image about the viewing axis (camera +z), applied
  last, positive turns camera +x toward camera +y.
* The rotation is ``R_world_from_cam = Rz(lao) @ Rx(-cranial) @ B @ Rz(in_plane)`` with
  ``B`` the AP orientation above; the source sits ``source_to_isocenter_mm`` before the
  isocentre along the viewing direction.
* ``table_offset_mm``: the table (with the patient) moved by this LPS vector relative to
  the C-arm, so the isocentre in patient coordinates is ``isocenter_lps - table_offset``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from geometry.rigid import validate_rigid

# AP orientation: columns are camera x, y, z expressed in LPS.
_B_AP = np.array([[-1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, -1.0, 0.0]]).T


def _rot_x(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def _rot_z(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


# ---------------------------------------------------------------------- C-arm angles
def carm_pose(
    lao_deg: float,
    cranial_deg: float,
    source_to_isocenter_mm: float,
    isocenter_lps: Any,
    table_offset_mm: Any = (0.0, 0.0, 0.0),
    in_plane_deg: float = 0.0,
) -> np.ndarray:
    """``T_cam_from_world`` (4x4 float64) for clinical C-arm parameters (see module doc).

    Args:
        lao_deg: LAO (+) / RAO (-) angle in degrees.
        cranial_deg: cranial (+) / caudal (-) angle in degrees.
        source_to_isocenter_mm: distance from the source to the isocentre (mm, > 0).
        isocenter_lps: isocentre in LPS mm (table offset zero).
        table_offset_mm: table translation in LPS mm; isocentre becomes ``iso - offset``.
        in_plane_deg: image rotation about the viewing axis in degrees.
    """
    if not (math.isfinite(source_to_isocenter_mm) and source_to_isocenter_mm > 0):
        raise ValueError(f"source_to_isocenter_mm must be positive, got {source_to_isocenter_mm}")
    iso = np.asarray(isocenter_lps, dtype=np.float64).reshape(3)
    off = np.asarray(table_offset_mm, dtype=np.float64).reshape(3)
    for name, v in (
        ("lao_deg", lao_deg),
        ("cranial_deg", cranial_deg),
        ("in_plane_deg", in_plane_deg),
    ):
        if not math.isfinite(float(v)):
            raise ValueError(f"{name} must be finite, got {v}")
    if not (np.all(np.isfinite(iso)) and np.all(np.isfinite(off))):
        raise ValueError("isocenter_lps and table_offset_mm must be finite")
    R_wc = (
        _rot_z(math.radians(lao_deg))
        @ _rot_x(-math.radians(cranial_deg))
        @ _B_AP
        @ _rot_z(math.radians(in_plane_deg))
    )
    iso_patient = iso - off
    source = iso_patient - source_to_isocenter_mm * R_wc[:, 2]
    T = np.eye(4)
    T[:3, :3] = R_wc.T
    T[:3, 3] = -R_wc.T @ source
    return T


def carm_angles_from_pose(T_cam_from_world: Any, source_to_isocenter_mm: float) -> dict:
    """Inverse of :func:`carm_pose` (table offset taken as zero).

    Returns ``{"lao_deg", "cranial_deg", "in_plane_deg", "isocenter_lps" (3,)}``: the
    isocentre is the point ``source_to_isocenter_mm`` along the viewing axis. At
    cranial = +-90 degrees LAO is undefined and reported as 0.
    """
    T = validate_rigid(T_cam_from_world)
    R_wc = T[:3, :3].T
    d = R_wc[:, 2]
    cranial = math.asin(max(-1.0, min(1.0, d[2])))
    if math.hypot(d[0], d[1]) < 1e-12:
        lao = 0.0
    else:
        lao = math.atan2(d[0], -d[1])
    M = _B_AP.T @ _rot_x(cranial) @ _rot_z(-lao) @ R_wc  # = Rz(in_plane)
    in_plane = math.atan2(M[1, 0], M[0, 0])
    source = -R_wc @ T[:3, 3]
    iso = source + source_to_isocenter_mm * d
    return {
        "lao_deg": math.degrees(lao),
        "cranial_deg": math.degrees(cranial),
        "in_plane_deg": math.degrees(in_plane),
        "isocenter_lps": iso,
    }
