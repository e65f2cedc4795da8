"""One-image C-arm calibration: beads -> distortion polynomial, effective source, ``K``.

Inputs are a phantom image (any polarity), a :class:`Phantom` and the detector pixel
spacing ``(sx, sy)`` in mm. Output is a :class:`CalibrationResult` whose ``profile`` is the
``profile.json`` object of CONVENTIONS.md. Pixel coordinates of the profile (polynomials,
``K``) refer to the stored image after the profile's ``flip_horizontal`` flag is applied
(a device storing mirrored images); ``phantom_rotation_deg`` is the mounting rotation of
the clip-on phantom about the detector z axis (multiples of 90 degrees), which rotates
the phantom's bead positions in the detector frame.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field

import numpy as np

from refusal import Refused

from .correspond import CorrespondenceError, build_lattice, classify_large, match_code
from .detect import DetectionError, Detections, detect_beads, guess_polarity
from .detector import project_to_detector
from .phantom import Phantom, PhantomError
from .phantom_grid import analyse_grid
from .polynomial import Poly2D, fit_inverse, fit_poly, fit_poly_select_order, invert_numerically
from .source import SourceEstimate, estimate_source, intrinsics_from_source

PROFILE_FORMAT = "orthofuse.calibration_profile"
MIN_NEAR_BEADS = 30
MIN_FAR_BEADS = 6
QUADRANTS = {
    (0, 0): "upper-left",
    (1, 0): "upper-right",
    (0, 1): "lower-left",
    (1, 1): "lower-right",
}


class CalibrationError(Refused):
    """Calibration refused; the one-line message names the reason."""


@dataclass
class CalibrationResult:
    profile: dict
    forward: Poly2D
    inverse: Poly2D
    source: SourceEstimate | None
    K: np.ndarray | None
    flip: bool
    rotation_deg: int
    detections: Detections
    near_ids: list[str]
    near_detected_px: np.ndarray  # (N, 2) stored-image pixels (before the flip)
    near_target_px: np.ndarray  # (N, 2) ideal dewarped pixels of the fitted model
    near_used: np.ndarray  # (N,) bool (False: rejected outlier or held out)
    far_ids: list[str] = field(default_factory=list)
    far_detected_px: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    holdout_ids: list[str] = field(default_factory=list)

    def dewarp_points(self, stored_px: np.ndarray) -> np.ndarray:
        """Stored-image pixels (N, 2) -> dewarped pixels, applying the flip first."""
        p = np.asarray(stored_px, dtype=np.float64).reshape(-1, 2).copy()
        if self.flip:
            p[:, 0] = self.profile["width"] - 1 - p[:, 0]
        return self.forward.apply(p)


def _rot(deg: float) -> np.ndarray:
    t = np.deg2rad(deg)
    return np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])


def _match_far(pred: np.ndarray, cand: np.ndarray, pitch: float, *, search: float, tol: float):
    """Match predicted far-bead pixels to candidate blobs after a common translation."""
    if len(cand) == 0 or len(pred) == 0:
        return np.zeros(0, int), np.zeros(0, int)
    d = cand[None, :, :] - pred[:, None, :]
    dist = np.linalg.norm(d, axis=2)
    vecs = d[dist < search * pitch]
    if len(vecs) == 0:
        return np.zeros(0, int), np.zeros(0, int)
    dv = np.linalg.norm(vecs[:, None] - vecs[None], axis=2)
    support = (dv < 0.08 * pitch).sum(axis=1)
    best = np.argmax(support)
    shift = vecs[dv[best] < 0.08 * pitch].mean(axis=0)
    moved = pred + shift
    dist = np.linalg.norm(cand[None] - moved[:, None], axis=2)
    pi, ci = [], []
    for k in np.argsort(dist.min(axis=1)):
        j = int(np.argmin(dist[k]))
        if dist[k, j] < tol * pitch and j not in ci and int(np.argmin(dist[:, j])) == k:
            pi.append(int(k))
            ci.append(j)
    return np.array(pi, int), np.array(ci, int)


def calibrate(
    image: np.ndarray,
    phantom: Phantom,
    pixel_spacing: tuple[float, float],
    *,
    beads_bright: bool | None = None,
    nominal_sid_mm: float = 1000.0,
    holdout_ids: list[str] | tuple[str, ...] = (),
    position_noise_px: float = 0.0,
    rng: np.random.Generator | int | None = None,
    metadata: dict | None = None,
    sdd_mm: float | None = None,
    sdd_origin: str | None = None,
    photometric: str | None = None,
) -> CalibrationResult:
    """Calibrate from one phantom image; raises :class:`CalibrationError` with the reason.

    Two-layer phantoms: our square-grid design is named by the lattice and its code of
    large beads (:mod:`.correspond`); any other layout, or when that fails, by the general
    identification of :mod:`.identify` (square, hexagonal or irregular near layer; code by
    bead sizes, missing beads or the outline; ties decided by the far layer). Either way
    the far layer must then agree with one plausible source, or the image is refused;
    projections that touch a bead of the other layer (or crowd another blob) are left out
    of the fits when enough remain, and far beads outside the named near beads' hull
    (where the polynomial would extrapolate) are not used for the source.

    A grid plate (``phantom.grid``) gives the distortion alone (:mod:`.plate`): the source
    is nominal, ``(0, 0, -sdd_mm)`` (``sdd_origin`` says where the distance came from; none
    given: 1000 mm, and the profile says so); ``photometric`` "MONOCHROME1" marks an image
    stored inverted. Both are unused for bead phantoms.

    ``holdout_ids`` are plane-0 beads kept out of the distortion fit (for validation);
    ``position_noise_px`` adds Gaussian noise to detected centroids (benchmarks only).
    ``metadata`` may carry ``device``, ``primary_angle_deg``, ``secondary_angle_deg``,
    ``calibrated_by`` and ``image`` for the profile.
    """
    img = np.asarray(image)
    if img.ndim != 2:
        raise CalibrationError(f"image must be a 2-D grey image, got shape {img.shape}")
    h, w = img.shape
    try:
        sx, sy = float(pixel_spacing[0]), float(pixel_spacing[1])
    except (TypeError, ValueError, IndexError):
        raise CalibrationError("pixel spacing must be two numbers (sx, sy) in mm") from None
    if not (np.isfinite(sx) and np.isfinite(sy) and 0.01 <= sx <= 5 and 0.01 <= sy <= 5):
        raise CalibrationError(f"pixel spacing must be between 0.01 and 5 mm, got {sx}, {sy}")
    if phantom.grid is not None:
        return _calibrate_plate(
            img, phantom, (sx, sy), sdd_mm, sdd_origin, photometric, beads_bright, metadata
        )
    try:
        grid = analyse_grid(phantom)
    except PhantomError:
        grid = None  # not our square-grid design: general identification only
    if beads_bright is None:
        try:
            first = guess_polarity(img)
        except DetectionError as exc:
            raise CalibrationError(str(exc)) from None
        polarities = [first, not first]
    else:
        polarities = [bool(beads_bright)]
    args = (list(holdout_ids), position_noise_px, rng, metadata or {})
    errors: list[str] = []
    if grid is not None:
        mean_sp = 0.5 * (sx + sy)
        all_d = phantom.diameters
        r_range = (
            0.85 * grid.small_diameter / 2 / max(sx, sy),
            1.35 * all_d.max() / 2 / min(sx, sy),
        )
        z_near = float(np.median(phantom.xyz[grid.indices, 2]))
        m_near = nominal_sid_mm / (nominal_sid_mm + z_near)
        pitch_guess = grid.pitch_mm * m_near / mean_sp
        identification_failed = False
        for pol in polarities:
            try:
                det = detect_beads(img, r_range, beads_bright=pol)
                return _calibrate_detections(
                    det, phantom, grid, (w, h), (sx, sy), pitch_guess, nominal_sid_mm, *args
                )
            except (DetectionError, CorrespondenceError, CalibrationError) as exc:
                errors.append(str(exc))
                identification_failed |= isinstance(
                    exc, (CorrespondenceError, _GridIdentificationError)
                )
                if isinstance(exc, DetectionError) and "blank" in str(exc):
                    raise CalibrationError(errors[0]) from None
        if not identification_failed:
            raise CalibrationError(errors[0])
    # general identification from phantom.json alone (any layout and code)
    near = phantom.plane_mask(0)
    r_range = (
        0.85 * float(phantom.diameters[near].min()) / 2 / max(sx, sy),
        1.35 * float(phantom.diameters.max()) / 2 / min(sx, sy),
    )
    for pol in polarities:
        try:
            det = detect_beads(img, r_range, beads_bright=pol)
            return _calibrate_general(det, phantom, (w, h), (sx, sy), nominal_sid_mm, *args)
        except (DetectionError, CalibrationError) as exc:
            errors.append(str(exc))
            if isinstance(exc, DetectionError) and "blank" in str(exc):
                break
    raise CalibrationError(errors[0])


class _GridIdentificationError(CalibrationError):
    """The square-grid identification failed (the general one may still succeed)."""


class _UnreliableIdentification(_GridIdentificationError):
    """The far layer contradicts the near layer's identification."""


def _calibrate_general(
    det: Detections,
    phantom: Phantom,
    size: tuple[int, int],
    spacing: tuple[float, float],
    nominal_sid_mm: float,
    holdout_ids: list[str],
    position_noise_px: float,
    rng,
    metadata: dict,
) -> CalibrationResult:
    """Near layer named by :mod:`.identify`; ties of the code decided by the far layer."""
    from .identify import IdentificationError, identify_near, near_layer

    w, h = size
    sx, sy = spacing
    if len(det) < 9:
        raise CalibrationError(
            f"only {len(det)} bead-like blobs detected: not an image of phantom '{phantom.name}'"
        )
    if not phantom.has_far_layer:
        raise CalibrationError(
            f"phantom '{phantom.name}' has no far layer (plane 1): a single-plane bead phantom "
            "must be a square grid with a code of larger beads, or a grid plate"
        )
    xy_stored = det.xy.copy()
    if position_noise_px > 0:
        gen = np.random.default_rng(rng)
        xy_stored = xy_stored + gen.normal(scale=position_noise_px, size=xy_stored.shape)
    nl = near_layer(phantom)
    s_mean = 0.5 * (sx + sy)
    iso = np.array([sx, sy]) / s_mean  # isotropic pixels keep the layout's shape
    centre = (
        np.array(det.fov_centre) if np.isfinite(det.fov_radius) else np.array([(w - 1) / 2, (h - 1) / 2])
    )
    m_near = nominal_sid_mm / (nominal_sid_mm + nl.z)
    scale = m_near / s_mean

    def inside_field(p_iso):
        return _inside(det.fov_mask, np.asarray(p_iso) / iso)

    try:
        hyps, decided = identify_near(
            xy_stored * iso, det.integral, nl, centre * iso, scale, inside_field,
            origin_px=np.array([(w - 1) / 2, (h - 1) / 2]) * iso,
        )  # fmt: skip
    except IdentificationError as exc:
        raise CalibrationError(str(exc)) from None
    pitch_px = nl.nn * scale
    results, failures = [], []
    for hyp in hyps:
        try:
            res = _finish_calibration(
                det, phantom, xy_stored, hyp.blob, nl.index[hyp.bead], nl.index, pitch_px,
                size, spacing, nominal_sid_mm, holdout_ids, metadata,
                any_rotation=True, far_check=True,
            )  # fmt: skip
        except CalibrationError as exc:
            failures.append(str(exc))
            continue
        res.profile["identification"] = {
            "method": "general",
            "code_decided": decided,
            "candidates": len(hyps),
            "code_score": hyp.score,
            "code_detail": hyp.detail,
        }
        results.append(res)
    if not results:
        raise CalibrationError(failures[0])
    if len(results) == 1:
        # one labelling only: the code decided, or the far layer refused the others
        results[0].profile["identification"]["decided_by"] = "code" if decided else "far layer"
        return results[0]
    # several labellings let the far layer fit: the clearly better far fit wins
    q = sorted(results, key=lambda r: _far_quality(r))
    if _far_quality(q[0]) < 0.4 * _far_quality(q[1]):
        q[0].profile["identification"]["decided_by"] = "far layer"
        return q[0]
    raise CalibrationError(
        "the phantom orientation is ambiguous: its code and its far layer fit "
        f"{len(results)} orientations equally; rotate the phantom so that at least three "
        "coded beads (or its asymmetric edge) are in the field, then take the image again"
    )


def _far_quality(res: CalibrationResult) -> float:
    """Far-layer misfit in pixels (RMS of the inlier residuals), lower is better."""
    vals = [v for v in res.profile.get("source_residuals_px", {}).values()]
    if not vals:
        return float("inf")
    return float(np.sqrt(np.mean(np.square(vals)))) + 1e-3


def _calibrate_plate(img, phantom, spacing, sdd_mm, sdd_origin, photometric, bright, metadata):
    """Grid plate: expected polarity first (holes bright, beads dark in raw intensity;
    MONOCHROME1 stored inverted), then the other one if no lattice was found."""
    from .plate import calibrate_plate

    work = np.asarray(img, dtype=np.float64)
    if photometric and str(photometric).upper() == "MONOCHROME1":
        work = float(np.max(work)) - work
    first = (phantom.grid.marker == "hole") if bright is None else bool(bright)
    errors = []
    for pol in (first, not first) if bright is None else (first,):
        try:
            return calibrate_plate(
                work, phantom, spacing, sdd_mm=sdd_mm, sdd_origin=sdd_origin,
                markers_bright=pol, metadata=metadata,
            )  # fmt: skip
        except CalibrationError as exc:
            errors.append(str(exc))
            if "blank" in str(exc) or "must be" in str(exc):
                break
    raise CalibrationError(errors[0])


def _calibrate_detections(
    det: Detections,
    phantom: Phantom,
    grid,
    size: tuple[int, int],
    spacing: tuple[float, float],
    pitch_guess: float,
    nominal_sid_mm: float,
    holdout_ids: list[str],
    position_noise_px: float,
    rng,
    metadata: dict,
) -> CalibrationResult:
    w, h = size
    sx, sy = spacing
    if len(det) < 9:
        raise CalibrationError(
            f"only {len(det)} bead-like blobs detected: not an image of phantom '{phantom.name}'"
        )
    xy_stored = det.xy.copy()
    if position_noise_px > 0:
        gen = np.random.default_rng(rng)
        xy_stored = xy_stored + gen.normal(scale=position_noise_px, size=xy_stored.shape)
    centre = (
        np.array(det.fov_centre)
        if np.isfinite(det.fov_radius)
        else np.array([(w - 1) / 2, (h - 1) / 2])
    )
    if np.isfinite(det.fov_radius):
        # beads of plane 0 expected inside the field (nominal geometry)
        nominal = (
            phantom.xyz[grid.indices, :2]
            / np.array([sx, sy])
            * (pitch_guess * 0.5 * (sx + sy) / grid.pitch_mm)
        )
        n_expected = int(np.sum(np.linalg.norm(nominal, axis=1) < det.fov_radius * 0.95))
        if len(det) < 0.3 * n_expected:
            raise CalibrationError(
                f"only {len(det)} of {n_expected} beads found: too many hidden, or the wrong phantom"
            )
    lat = build_lattice(xy_stored, centre, pitch_guess)
    pitch_mm_seen = lat.pitch_px * 0.5 * (sx + sy)
    ratio = pitch_mm_seen / grid.pitch_mm
    if not 0.9 <= ratio <= 1.15:
        raise _GridIdentificationError(
            f"bead grid spacing in the image is {pitch_mm_seen:.1f} mm but phantom "
            f"'{phantom.name}' has {grid.pitch_mm:.1f} mm: wrong phantom or wrong pixel spacing"
        )
    large = classify_large(det.integral[lat.blob_index], grid.large_diameter / grid.small_diameter)
    nm = match_code(lat, large, grid)
    return _finish_calibration(
        det, phantom, xy_stored, nm.blob_index, nm.bead_index, grid.indices, lat.pitch_px,
        size, spacing, nominal_sid_mm, holdout_ids, metadata, far_check=True,
    )  # fmt: skip


def _finish_calibration(
    det: Detections,
    phantom: Phantom,
    xy_stored: np.ndarray,
    near_blob: np.ndarray,
    near_bead_index: np.ndarray,
    near_indices: np.ndarray,
    pitch_px: float,
    size: tuple[int, int],
    spacing: tuple[float, float],
    nominal_sid_mm: float,
    holdout_ids: list[str],
    metadata: dict,
    *,
    any_rotation: bool = False,
    far_check: bool = False,
) -> CalibrationResult:
    """Distortion, source and profile from named near-layer blobs.

    ``near_blob``/``near_bead_index`` pair detections with ``phantom.beads`` entries;
    ``near_indices`` are all plane-0 beads; ``pitch_px`` the near spacing in the image.
    The mounting rotation is snapped to multiples of 90 degrees (``any_rotation``: only
    when within 2 degrees of one, else kept as found). ``far_check`` refuses a far layer
    that does not agree with one plausible source (the check of a general identification).
    """
    w, h = size
    sx, sy = spacing
    nm = _NearPairs(np.asarray(near_blob, int), np.asarray(near_bead_index, int))
    grid = _NearIndices(np.asarray(near_indices, int))

    # mirror and mounting rotation from a linear fit phantom mm -> image mm
    pxy = phantom.xyz[nm.bead_index, :2]
    obs = xy_stored[nm.blob_index] * np.array([sx, sy])
    a_mat = _linear_part(pxy, obs)
    flip = bool(np.linalg.det(a_mat) < 0)
    xy = xy_stored.copy()
    if flip:
        xy[:, 0] = w - 1 - xy[:, 0]
    obs = xy[nm.blob_index] * np.array([sx, sy])
    a_mat = _linear_part(pxy, obs)
    theta = np.degrees(np.arctan2(a_mat[1, 0] - a_mat[0, 1], a_mat[0, 0] + a_mat[1, 1]))
    rot_deg = int(90 * np.round(theta / 90)) % 360
    if any_rotation and abs(((theta - rot_deg) + 180) % 360 - 180) > 2.0:
        rot_deg = round(float(theta) % 360, 2)
    xyz = phantom.xyz.copy()
    xyz[:, :2] = xyz[:, :2] @ _rot(rot_deg).T

    ids = phantom.ids
    near_bead = nm.bead_index
    near_px = xy[nm.blob_index]
    holdout = np.array([ids[b] in set(holdout_ids) for b in near_bead], bool)
    centre_px = ((w - 1) / 2, (h - 1) / 2)
    scale_px = ((w - 1) / 2, (h - 1) / 2)

    has_far = phantom.has_far_layer
    far_idx_all = np.flatnonzero(phantom.planes == 1)
    source = np.array([0.0, 0.0, -nominal_sid_mm])
    src_est: SourceEstimate | None = None
    far_bead = np.zeros(0, int)
    far_blob = np.zeros(0, int)
    used_blobs = set(nm.blob_index.tolist())
    cand_idx = np.array([i for i in range(len(xy)) if i not in used_blobs], int)
    touch_near = np.zeros(len(near_bead), bool)
    touch_far = np.zeros(len(far_idx_all), bool)
    crowded = np.zeros(len(xy), bool)
    if far_check and has_far:
        # projections that touch a bead of the other layer give biased centroids, and so
        # do blobs with another blob just beside them
        touch_near, touch_far = _touching(phantom, xyz, near_bead, far_idx_all, source, spacing)
        crowded = _crowded(xy, det.radius, 3.0)
        if np.sum(~holdout & ~touch_near & ~crowded[nm.blob_index]) >= 2 * MIN_NEAR_BEADS:
            touch_near |= crowded[nm.blob_index]
    fit = None
    for it in range(6):
        if far_check and has_far and it > 0:
            # again with the source found (the nominal one puts far beads a few px off)
            touch_near, touch_far = _touching(
                phantom, xyz, near_bead, far_idx_all, source, spacing
            )
            if np.sum(~holdout & ~touch_near & ~crowded[nm.blob_index]) >= 2 * MIN_NEAR_BEADS:
                touch_near |= crowded[nm.blob_index]
        tgt = _to_px(project_to_detector(xyz[near_bead], source), w, h, sx, sy)
        fit_sel = ~holdout & ~touch_near
        if fit_sel.sum() < MIN_NEAR_BEADS:
            raise CalibrationError(
                f"only {int(fit_sel.sum())} of {len(phantom.plane_mask(0).nonzero()[0])} "
                f"near-layer beads found; at least {MIN_NEAR_BEADS} needed"
            )
        if fit is None:
            fit = fit_poly_select_order(near_px[fit_sel], tgt[fit_sel], centre_px, scale_px)
        else:
            fit = fit_poly(near_px[fit_sel], tgt[fit_sel], fit.poly.order, centre_px, scale_px)
        if it == 0:
            _check_coverage(
                fit.poly,
                xyz,
                grid,
                source,
                near_bead[fit_sel][fit.weights > 0.5],
                near_px[fit_sel][fit.weights > 0.5],
                det,
                flip,
                w,
                h,
                sx,
                sy,
            )
        if not has_far:
            break
        pred_und = _to_px(project_to_detector(xyz[far_idx_all], source), w, h, sx, sy)
        pred = invert_numerically(fit.poly, pred_und, guess=pred_und)
        if it == 0:
            pi, ci = _match_far(pred, xy[cand_idx], pitch_px, search=0.45, tol=0.15)
        else:
            pi, ci = _match_far(pred, xy[cand_idx], pitch_px, search=0.12, tol=0.08)
        if len(pi) < MIN_FAR_BEADS:
            raise CalibrationError(
                f"only {len(pi)} far-layer (plane 1) beads found; at least {MIN_FAR_BEADS} are "
                "needed for the source position"
            )
        if far_check:
            # only far beads the distortion model covers (inside the named near beads'
            # hull: outside it the polynomial extrapolates) and not touching a near bead
            covered = _inside_hull(near_px[fit_sel], xy[cand_idx[ci]], -0.5 * pitch_px)
            pi, ci = pi[covered], ci[covered]
            keep = ~touch_far[pi] & ~crowded[cand_idx[ci]]
            if keep.sum() < MIN_FAR_BEADS:
                keep = ~touch_far[pi]
            if keep.sum() >= MIN_FAR_BEADS:
                pi, ci = pi[keep], ci[keep]
            if len(pi) < MIN_FAR_BEADS:
                raise CalibrationError(
                    f"only {len(pi)} far-layer (plane 1) beads found over the near layer's area; "
                    f"at least {MIN_FAR_BEADS} are needed for the source position"
                )
        far_bead = far_idx_all[pi]
        far_blob = cand_idx[ci]
        und = fit.poly.apply(xy[far_blob])
        det_mm = _to_mm(und, w, h, sx, sy)
        try:
            src_est = estimate_source(xyz[far_bead], det_mm)
        except ValueError as exc:
            raise CalibrationError(f"effective source could not be estimated: {exc}") from None
        moved = np.linalg.norm(src_est.source_mm - source)
        source = src_est.source_mm
        if it >= 1 and moved < 1e-3:
            break
    assert fit is not None
    if far_check and src_est is not None:
        _check_far_layer(src_est, xyz, far_bead, far_idx_all, fit.poly, source, det, flip,
                         (w, h), (sx, sy), nominal_sid_mm, near_px[fit_sel], pitch_px,
                         touch_far)  # fmt: skip

    forward = fit.poly
    # inverse map on a dense grid of the usable field (flip-corrected pixels)
    vv, uu = np.mgrid[0:h:8, 0:w:8]
    mask = det.fov_mask[vv, uu] if not flip else det.fov_mask[vv, w - 1 - uu]
    region = np.column_stack([uu[mask], vv[mask]]).astype(np.float64)
    inverse = fit_inverse(forward, region)

    # residuals over all near beads (fit inliers and hold-outs)
    tgt = _to_px(project_to_detector(xyz[near_bead], source), w, h, sx, sy)
    und_near = forward.apply(near_px)
    res_px = und_near - tgt
    used = np.zeros(len(near_bead), bool)
    used[np.flatnonzero(fit_sel)[fit.weights > 0.5]] = True
    res_mm = res_px * np.array([sx, sy])
    rn_px = np.linalg.norm(res_px, axis=1)
    rn_mm = np.linalg.norm(res_mm, axis=1)
    near_ids = [ids[b] for b in near_bead]

    K = intrinsics_from_source(source, w, h, (sx, sy)) if src_est is not None else None
    beads = []
    for k, b in enumerate(near_bead):
        beads.append(
            {
                "id": ids[b],
                "plane": 0,
                "detected_px": [float(v) for v in xy_stored[nm.blob_index[k]]],
                "dewarped_px": [float(v) for v in und_near[k]],
                "expected_px": [float(v) for v in tgt[k]],
                "residual_px": float(rn_px[k]),
                "used": bool(used[k]),
                "held_out": bool(holdout[k]),
            }
        )
    far_res = {}
    if src_est is not None:
        und_far = forward.apply(xy[far_blob])
        exp_far = _to_px(project_to_detector(xyz[far_bead], source), w, h, sx, sy)
        for k, b in enumerate(far_bead):
            r = float(np.linalg.norm(und_far[k] - exp_far[k]))
            far_res[ids[b]] = r
            beads.append(
                {
                    "id": ids[b],
                    "plane": 1,
                    "detected_px": [float(v) for v in xy_stored[far_blob[k]]],
                    "dewarped_px": [float(v) for v in und_far[k]],
                    "expected_px": [float(v) for v in exp_far[k]],
                    "residual_px": r,
                    "used": bool(src_est.inliers[k]),
                    "held_out": False,
                }
            )
    found = {b["id"] for b in beads}
    hidden = _expected_hidden(forward, xyz, phantom, source, det, flip, w, h, sx, sy, found)

    def summary(values: np.ndarray, names: list[str]) -> dict:
        sel = used
        return {
            "rms": float(np.sqrt(np.mean(values[sel] ** 2))) if np.any(sel) else None,
            "max": float(np.max(values[sel])) if np.any(sel) else None,
            "per_bead": {n: float(v) for n, v in zip(names, values, strict=True)},
        }

    md = metadata
    profile = {
        "format": PROFILE_FORMAT,
        "version": 1,
        "device": md.get("device"),
        "phantom": phantom.name,
        "image": md.get("image"),
        "primary_angle_deg": md.get("primary_angle_deg"),
        "secondary_angle_deg": md.get("secondary_angle_deg"),
        "width": int(w),
        "height": int(h),
        "pixel_spacing_mm": [float(sx), float(sy)],
        "flip_horizontal": flip,
        "phantom_rotation_deg": rot_deg,
        "forward": forward.to_dict(),
        "inverse": inverse.to_dict(),
        "source": "fitted" if src_est is not None else None,
        "source_mm": [float(v) for v in source] if src_est is not None else None,
        "source_to_detector_mm": float(-source[2]) if src_est is not None else None,
        "source_uncertainty_mm": (
            {
                "lateral": src_est.lateral_sd_mm,
                "axial": src_est.axial_sd_mm,
                "covariance": src_est.covariance.tolist(),
            }
            if src_est is not None
            else None
        ),
        "K": K.tolist() if K is not None else None,
        "residuals_px": summary(rn_px, near_ids),
        "residuals_mm": summary(rn_mm, near_ids),
        "loo_rms_px": float(fit.loo_rms),
        "source_residuals_px": far_res,
        "beads_used": int(used.sum()),
        "beads_far_used": int(src_est.inliers.sum()) if src_est is not None else 0,
        "beads_detected": int(len(det)),
        "beads_hidden": sorted(hidden),
        "beads": beads,
        "beads_bright": det.beads_bright,
        "calibrated_by": md.get("calibrated_by"),
        "calibrated_at": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }
    return CalibrationResult(
        profile=profile,
        forward=forward,
        inverse=inverse,
        source=src_est,
        K=K,
        flip=flip,
        rotation_deg=rot_deg,
        detections=det,
        near_ids=near_ids,
        near_detected_px=xy_stored[nm.blob_index],
        near_target_px=tgt,
        near_used=used,
        far_ids=[ids[b] for b in far_bead],
        far_detected_px=xy_stored[far_blob] if len(far_blob) else np.zeros((0, 2)),
        holdout_ids=[n for n, ho in zip(near_ids, holdout, strict=True) if ho],
    )


def _inside_hull(pts: np.ndarray, q: np.ndarray, margin: float) -> np.ndarray:
    """Points ``q`` at least ``margin`` pixels inside the convex hull of ``pts``."""
    import cv2

    if len(pts) < 3 or len(q) == 0:
        return np.ones(len(q), bool)
    hull = cv2.convexHull(np.asarray(pts, np.float32))
    return np.array(
        [cv2.pointPolygonTest(hull, (float(x), float(y)), True) >= margin for x, y in q], bool
    )


def _crowded(xy: np.ndarray, radius: np.ndarray, gap_px: float) -> np.ndarray:
    """Blobs with another blob closer than the sum of their radii plus ``gap_px`` (the
    neighbour reaches into the centroid's window and background ring)."""
    from scipy.spatial import cKDTree

    if len(xy) < 2:
        return np.zeros(len(xy), bool)
    tree = cKDTree(xy)
    d, j = tree.query(xy, k=min(4, len(xy)))
    lim = radius[:, None] + radius[j] + gap_px
    return np.any((d[:, 1:] < lim[:, 1:]), axis=1)


def _touching(phantom, xyz, near_bead, far_idx, source, spacing):
    """Masks of named near beads and of far beads whose projections touch (or overlap)
    a projection of the other layer (plus two pixels of blur)."""
    d = phantom.diameters
    pn = project_to_detector(xyz[near_bead], source)
    pf = project_to_detector(xyz[far_idx], source)
    all_near = np.flatnonzero(phantom.planes == 0)
    pn_all = project_to_detector(xyz[all_near], source)
    sz = -source[2]
    m_n = sz / (sz + xyz[near_bead, 2])
    m_f = sz / (sz + xyz[far_idx, 2])
    m_all = sz / (sz + xyz[all_near, 2])
    margin = 1.5 * max(spacing)  # overlapping or touching: one merged blob
    from scipy.spatial import cKDTree

    rf_max = float(np.max(d[far_idx] / 2 * m_f)) if len(far_idx) else 0.0
    rn_max = float(np.max(d[all_near] / 2 * m_all))
    tf = cKDTree(pf) if len(pf) else None
    tn = cKDTree(pn_all)
    touch_near = np.zeros(len(near_bead), bool)
    if tf is not None:
        for k, lst in enumerate(tf.query_ball_point(pn, d[near_bead] / 2 * m_n + rf_max + margin)):
            for j in lst:
                if np.linalg.norm(pf[j] - pn[k]) < d[near_bead[k]] / 2 * m_n[k] + d[far_idx[j]] / 2 * m_f[j] + margin:
                    touch_near[k] = True
                    break
    touch_far = np.zeros(len(far_idx), bool)
    for j, lst in enumerate(tn.query_ball_point(pf, d[far_idx] / 2 * m_f + rn_max + margin)):
        for k in lst:
            if np.linalg.norm(pn_all[k] - pf[j]) < d[all_near[k]] / 2 * m_all[k] + d[far_idx[j]] / 2 * m_f[j] + margin:
                touch_far[j] = True
                break
    return touch_near, touch_far


def _check_far_layer(src_est, xyz, far_bead, far_idx_all, poly, source, det, flip, size, spacing,
                     nominal_sid_mm, near_px=None, pitch_px=0.0, touch_far=None):  # fmt: skip
    """A right identification lets most far beads in the field agree with one plausible
    source; a wrong one does not (the check of a general identification)."""
    w, h = size
    sx, sy = spacing
    n_in = int(src_est.inliers.sum())
    rms_mm = float(np.sqrt(np.mean(np.sum(src_est.residuals_mm[src_est.inliers] ** 2, axis=1))))
    pred = _predicted_stored(poly, xyz[far_idx_all], source, w, h, sx, sy, flip)
    seen = _inside(det.fov_mask, pred)
    if near_px is not None:
        p2 = pred.copy()
        if flip:
            p2[:, 0] = w - 1 - p2[:, 0]
        seen &= _inside_hull(near_px, p2, -0.5 * pitch_px)
    if touch_far is not None and np.sum(seen & ~touch_far) >= MIN_FAR_BEADS:
        seen &= ~touch_far  # excluded on purpose (biased centroids)
    expected = int(seen.sum())
    s = np.asarray(source)
    if rms_mm > max(0.15, 0.6 * max(sx, sy)) or n_in < max(MIN_FAR_BEADS, 0.3 * expected):
        raise _UnreliableIdentification(
            f"the far layer does not agree with one source ({n_in} of {expected} far beads fit, "
            f"RMS {rms_mm:.2f} mm): the beads were not identified reliably"
        )
    if np.hypot(s[0], s[1]) > 0.1 * nominal_sid_mm or not 0.6 < -s[2] / nominal_sid_mm < 1.6:
        raise _UnreliableIdentification(
            f"the source found ({s[0]:.0f}, {s[1]:.0f}, {s[2]:.0f}) mm is implausible: the "
            "beads were not identified reliably"
        )


@dataclass
class _NearPairs:
    blob_index: np.ndarray
    bead_index: np.ndarray


@dataclass
class _NearIndices:
    indices: np.ndarray


def _linear_part(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    a = np.column_stack([src, np.ones(len(src))])
    coef, *_ = np.linalg.lstsq(a, dst, rcond=None)
    return coef[:2].T


def _to_px(mm: np.ndarray, w: int, h: int, sx: float, sy: float) -> np.ndarray:
    return np.column_stack([mm[:, 0] / sx + (w - 1) / 2, mm[:, 1] / sy + (h - 1) / 2])


def _to_mm(px: np.ndarray, w: int, h: int, sx: float, sy: float) -> np.ndarray:
    return np.column_stack([(px[:, 0] - (w - 1) / 2) * sx, (px[:, 1] - (h - 1) / 2) * sy])


def _predicted_stored(poly, xyz, source, w, h, sx, sy, flip) -> np.ndarray:
    und = _to_px(project_to_detector(xyz, source), w, h, sx, sy)
    p = invert_numerically(poly, und, guess=und)
    if flip:
        p[:, 0] = w - 1 - p[:, 0]
    return p


def _inside(mask: np.ndarray, p: np.ndarray) -> np.ndarray:
    h, w = mask.shape
    iu = np.round(p[:, 0]).astype(int)
    iv = np.round(p[:, 1]).astype(int)
    ok = (iu >= 0) & (iu < w) & (iv >= 0) & (iv < h) & np.isfinite(p).all(axis=1)
    out = np.zeros(len(p), bool)
    out[ok] = mask[iv[ok], iu[ok]]
    return out


def _check_coverage(poly, xyz, grid, source, found_beads, found_px, det, flip, w, h, sx, sy):
    """Refuse when the near layer is not covered well enough (overall or per quadrant)."""
    pred = _predicted_stored(poly, xyz[grid.indices], source, w, h, sx, sy, flip)
    inside = _inside(det.fov_mask, pred)
    n_exp = int(inside.sum())
    found = np.asarray(found_px, dtype=np.float64).copy()
    if flip:
        found[:, 0] = w - 1 - found[:, 0]
    n_found = len(found)
    if n_found < max(MIN_NEAR_BEADS, 0.3 * n_exp):
        raise CalibrationError(
            f"only {n_found} of {n_exp} near-layer beads found: too many hidden or out of the field"
        )
    c = np.array(det.fov_centre)
    exp_q = (pred[inside] > c).astype(int)
    got_q = (found > c).astype(int)
    for key, name in QUADRANTS.items():
        n_e = int(np.sum(np.all(exp_q == key, axis=1)))
        n_g = int(np.sum(np.all(got_q == key, axis=1)))
        if n_e >= 5 and n_g < max(3, 0.15 * n_e):
            if n_g == 0:
                raise CalibrationError(f"no beads detected in the {name} quadrant")
            raise CalibrationError(
                f"only {n_g} of {n_e} beads detected in the {name} quadrant: too few to fit the distortion"
            )


def _expected_hidden(poly, xyz, phantom, source, det, flip, w, h, sx, sy, found) -> list[str]:
    pred = _predicted_stored(poly, xyz, source, w, h, sx, sy, flip)
    inside = _inside(det.fov_mask, pred)
    return [b.id for b, ok in zip(phantom.beads, inside, strict=True) if ok and b.id not in found]
