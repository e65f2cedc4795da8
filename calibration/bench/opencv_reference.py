"""OpenCV's rational + thin-prism camera model as the reference of ``bench_calibration``:
the hold-out residual it reaches on the same beads as the engine."""

from __future__ import annotations

import cv2
import numpy as np

from calibration.engine.phantom import Phantom


def opencv_holdout(
    res, phantom: Phantom, fit_ids, ho_ids, width: int, height: int, spacing: float
) -> tuple[float, float]:
    """Hold-out residual (RMS, max; mm) of OpenCV's rational + thin-prism model.

    One planar view (the near layer, z = 0 in its own frame): the focal length is fixed at
    the nominal 1000 mm (not identifiable from one planar view), principal point, pose and
    the 12 rational/thin-prism coefficients are fitted on ``fit_ids``. The residual
    compares undistorted ``ho_ids`` detections with the projections of those beads by the
    fitted pose; ``spacing`` is the detector pixel spacing (mm/px). Raises ``cv2.error``
    when OpenCV cannot fit.
    """
    beads = {b["id"]: b for b in res.profile["beads"]}
    rot = np.deg2rad(res.rotation_deg)
    r2 = np.array([[np.cos(rot), -np.sin(rot)], [np.sin(rot), np.cos(rot)]])
    xyz = {b.id: b.xyz_mm for b in phantom.beads}

    def arrays(ids):
        obj = np.array([[*(np.array(xyz[i][:2]) @ r2.T), 0.0] for i in ids], np.float32)
        img = np.array([beads[i]["detected_px"] for i in ids], np.float32)
        if res.flip:
            img[:, 0] = width - 1 - img[:, 0]
        return obj, img

    obj, img = arrays(fit_ids)
    f_px = 1000.0 / spacing
    k0 = np.array([[f_px, 0, (width - 1) / 2], [0, f_px, (height - 1) / 2], [0, 0, 1]])
    flags = (
        cv2.CALIB_USE_INTRINSIC_GUESS
        | cv2.CALIB_FIX_FOCAL_LENGTH
        | cv2.CALIB_RATIONAL_MODEL
        | cv2.CALIB_THIN_PRISM_MODEL
    )
    crit = (cv2.TERM_CRITERIA_COUNT + cv2.TERM_CRITERIA_EPS, 200, 1e-12)
    _, k, dist, rvecs, tvecs = cv2.calibrateCamera(
        [obj], [img], (width, height), k0, None, flags=flags, criteria=crit
    )
    obj_h, img_h = arrays(ho_ids)
    und = cv2.undistortPoints(
        img_h.reshape(-1, 1, 2),
        k,
        dist,
        R=None,
        P=k,
        criteria=(cv2.TERM_CRITERIA_COUNT + cv2.TERM_CRITERIA_EPS, 100, 1e-10),
    ).reshape(-1, 2)
    proj, _ = cv2.projectPoints(obj_h, rvecs[0], tvecs[0], k, None)
    err = np.linalg.norm(und - proj.reshape(-1, 2), axis=1) * spacing
    return float(np.sqrt(np.mean(err**2))), float(np.max(err))
