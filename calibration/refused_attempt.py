"""What a refused calibration saw, for the admin's picture (no Django imports).

:func:`attempt_detections` runs the engine's own detectors on the phantom image as the
calibration did (bead blobs for a bead phantom, markers for a grid plate) and returns a
small JSON-ready summary: every accepted blob, the larger (coded) beads flagged.
:func:`draw_attempt` circles them on the displayed image; :func:`advice_for` turns the
refusal message into what to try next.
"""

from __future__ import annotations

import cv2
import numpy as np

from calibration.engine.detect import detect_beads, guess_polarity
from calibration.engine.phantom import Phantom
from calibration.engine.plate_markers import detect_markers
from refusal import Refused

MAX_BLOBS = 3000
NOMINAL_SDD_MM = 1000.0
BLOB_BGR = (80, 220, 80)  # green circle: a detected blob
CODED_BGR = (40, 160, 255)  # orange circle and cross: a larger (coded) bead

# (words of the refusal, what to try): the first entry whose words the message holds wins
_ADVICE = (
    ("blank", "The image has no contrast: check that the X-ray was exposed and that the "
     "file is the phantom image, not a blank or test frame."),
    ("field of view is too small", "The exposed field is too small: open the collimator, "
     "centre the phantom in the field, and take the image again."),
    ("no pixel spacing", "Enter the detector pixel spacing (on the C-arm, or with the "
     "upload for a PNG) and calibrate again."),
    ("wrong plate", "Check that the chosen plate (its pitch and markers) is the one imaged "
     "and that the detector pixel spacing is right."),
    ("pixel spacing", "Check the detector pixel spacing (on the C-arm, or given with a PNG "
     "upload) and that the chosen phantom is the one imaged, then calibrate again."),
    ("source-to-detector", "Enter the C-arm's source-to-detector distance on its page, or "
     "upload the DICOM image whose header carries it."),
    ("far-layer", "Too few far-layer beads were seen: centre the phantom so that its far "
     "layer is in the beam, with nothing lying over it, and take the image again."),
    ("far layer", "The far layer did not agree with one source: check that the phantom's "
     "layer gap in its phantom.json is right and that it sat flat on the detector."),
    ("ambiguous", "Rotate the phantom so that several coded (larger) beads and its "
     "asymmetric edge are in the field, then take the image again."),
    ("quadrant", "Beads were missing from part of the field: centre the phantom, remove "
     "anything lying over it, and take the image again."),
    ("hidden", "Too many beads were hidden or outside the field: remove what lies over the "
     "phantom, centre it in the field, and take the image again."),
    ("wrong phantom", "Choose the phantom that was actually imaged; if it is not listed, "
     "add its phantom.json on the phantom page."),
    ("does not match", "Choose the phantom that was actually imaged; if it is not listed, "
     "add its phantom.json on the phantom page."),
    ("-like blobs", "Few beads or markers were found: check that the phantom is in the beam, "
     "the exposure is not saturated, and the chosen phantom matches the one imaged."),
)
_GENERAL = (
    "Check that the chosen phantom matches the one imaged, that it lies flat against the "
    "detector with nothing over it, and that the image is an unprocessed frame; then "
    "take the image again."
)


def advice_for(message: str) -> str:
    """What to try after a refusal, from the words of its message."""
    low = message.lower()
    for key, advice in _ADVICE:
        if key in low:
            return advice
    return _GENERAL


def _bead_blobs(img: np.ndarray, phantom: Phantom, spacing: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """Blobs of a bead phantom as the engine detects them: ``(xy (N, 2), coded (N,))``."""
    sx, sy = spacing
    near = phantom.plane_mask(0)
    diam = phantom.diameters
    r_range = (0.85 * float(diam[near].min()) / 2 / max(sx, sy), 1.35 * float(diam.max()) / 2 / min(sx, sy))
    det = detect_beads(img, r_range, beads_bright=guess_polarity(img))
    dmin, dmax = float(diam[near].min()), float(diam[near].max())
    coded = np.zeros(len(det), bool)
    if dmax >= 1.3 * dmin:
        z_near = float(np.median(phantom.xyz[near, 2]))
        mag = NOMINAL_SDD_MM / (NOMINAL_SDD_MM + z_near)
        cut = np.sqrt(dmin * dmax) / 2 * mag / (0.5 * (sx + sy))
        coded = det.radius > cut
    return det.xy, coded


def _plate_markers(img: np.ndarray, phantom: Phantom, spacing: tuple[float, float], photometric: str | None) -> np.ndarray:
    """Marker centres of a grid plate as the engine detects them, (N, 2)."""
    grid = phantom.grid
    work = np.asarray(img, dtype=np.float64)
    if photometric and photometric.upper() == "MONOCHROME1":
        work = float(work.max()) - work
    mean_sp = 0.5 * (spacing[0] + spacing[1])
    found = detect_markers(
        work, grid.pitch_mm / mean_sp, grid.diameter_mm / mean_sp, grid.marker == "hole"
    )
    return found.xy


def attempt_detections(
    pixels: np.ndarray,
    phantom: Phantom,
    spacing: tuple[float, float],
    *,
    photometric: str | None = None,
) -> dict:
    """``{"width", "height", "blobs": [[u, v, coded], ...], "n_blobs", "n_coded",
    "kind"}`` for the picture of a refused calibration; ``"detection_error"`` says why
    nothing could be detected. At most ``MAX_BLOBS`` blobs are kept."""
    img = np.asarray(pixels, dtype=np.float64)
    out: dict = {"width": int(img.shape[-1]), "height": int(img.shape[0]), "blobs": []}
    try:
        if phantom.grid is not None:
            out["kind"] = "plate markers"
            xy = _plate_markers(img, phantom, spacing, photometric)
            coded = np.zeros(len(xy), bool)
        else:
            out["kind"] = "beads"
            xy, coded = _bead_blobs(img, phantom, spacing)
    except Refused as exc:  # the detectors' own refusals (blank image, no field, ...)
        out.update(n_blobs=0, n_coded=0, detection_error=str(exc))
        return out
    out["n_blobs"] = len(xy)
    out["n_coded"] = int(np.sum(coded))
    keep = np.argsort(~coded, kind="stable")[:MAX_BLOBS]  # coded beads first
    out["blobs"] = [[round(float(xy[k, 0]), 1), round(float(xy[k, 1]), 1), bool(coded[k])] for k in keep]
    return out


def draw_attempt(display: np.ndarray, attempt: dict) -> np.ndarray:
    """(H, W, 3) BGR picture: the uint8 ``display`` with every blob circled (green) and
    the coded beads circled and crossed (orange)."""
    grey = np.asarray(display, dtype=np.uint8)
    picture = cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR)
    h, w = grey.shape
    size = max(h, w)
    radius = max(4, round(size / 110))
    thick = max(1, round(size / 700))
    for u, v, coded in attempt.get("blobs", []):
        centre = (round(u), round(v))
        if coded:
            cv2.circle(picture, centre, radius + thick, CODED_BGR, thick + 1, cv2.LINE_AA)
            cv2.drawMarker(picture, centre, CODED_BGR, cv2.MARKER_CROSS, radius, thick, cv2.LINE_AA)
        else:
            cv2.circle(picture, centre, radius, BLOB_BGR, thick, cv2.LINE_AA)
    return picture
