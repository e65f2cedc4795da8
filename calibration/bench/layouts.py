"""Random two-layer phantom layouts and their frames (tests and ``bench_calibration``).

:func:`random_two_layer_phantom` draws a phantom the identification has never seen: a near
layer on a square, hexagonal or irregular layout, coded by larger beads (any ratio >= 1.3),
by a pattern of missing beads, or by an asymmetric outline; a far layer 40-100 mm further
toward the source, a grid of another pitch with a random offset and rotation or an
irregular scatter, whose projections may touch or overlap near beads. :func:`layout_frame`
renders one image-intensifier frame of it (random source, distortion with radial,
tangential and S components about an off-centre point, a mounting rotation, a mirroring
device, hidden beads, anatomy, beads cut by the field edge) with its ground truth, and
:func:`layout_case` calibrates it and judges the result.
"""

from __future__ import annotations

import time

import numpy as np

from calibration.engine.phantom import Bead, Phantom, phantom_from_dict
from simulation.phantom_frames import IIDistortion, SimGeometry, simulate_phantom_image

NEAR_LAYOUTS = ("square", "hex", "irregular")
CODINGS = ("large", "missing", "outline")


def _poisson_disc(rng, radius: float, min_dist: float, n_try: int = 30) -> np.ndarray:
    """Points in a disc of ``radius`` at least ``min_dist`` apart (Bridson's algorithm)."""
    cell = min_dist / np.sqrt(2)
    n = int(np.ceil(2 * radius / cell)) + 1
    grid = -np.ones((n, n), int)
    pts = [rng.uniform(-0.2, 0.2, 2) * radius]
    active = [0]

    def gidx(p):
        return tuple(((p + radius) / cell).astype(int))

    grid[gidx(pts[0])] = 0
    while active:
        k = active[rng.integers(len(active))]
        placed = False
        for _ in range(n_try):
            ang = rng.uniform(0, 2 * np.pi)
            r = rng.uniform(min_dist, 2 * min_dist)
            q = pts[k] + r * np.array([np.cos(ang), np.sin(ang)])
            if np.hypot(*q) > radius:
                continue
            gi, gj = gidx(q)
            ok = True
            for a in range(max(gi - 2, 0), min(gi + 3, n)):
                for b in range(max(gj - 2, 0), min(gj + 3, n)):
                    m = grid[a, b]
                    if m >= 0 and np.hypot(*(pts[m] - q)) < min_dist:
                        ok = False
                        break
                if not ok:
                    break
            if ok:
                pts.append(q)
                grid[gi, gj] = len(pts) - 1
                active.append(len(pts) - 1)
                placed = True
                break
        if not placed:
            active.remove(k)
    return np.array(pts)


def _lattice(kind: str, pitch: float, radius: float, rng) -> np.ndarray:
    if kind == "irregular":
        return _poisson_disc(rng, radius, pitch)
    n = int(np.ceil(radius / pitch)) + 2
    ii, jj = np.meshgrid(np.arange(-n, n + 1), np.arange(-n, n + 1))
    ij = np.stack([ii.ravel(), jj.ravel()], 1).astype(float)
    if kind == "hex":
        basis = np.array([[pitch, pitch / 2], [0.0, pitch * np.sqrt(3) / 2]])
    else:
        basis = np.array([[pitch, 0.0], [0.0, pitch]])
    pts = ij @ basis.T
    return pts[np.linalg.norm(pts, axis=1) <= radius]


def _asymmetric_outline(pts: np.ndarray, radius: float, rng) -> np.ndarray:
    """Keep points inside a disc with a flat cut on one side and a notch elsewhere."""
    a1 = rng.uniform(0, 2 * np.pi)
    a2 = a1 + rng.uniform(0.6, 1.4) * np.pi * rng.choice([-1, 1])
    d1 = np.array([np.cos(a1), np.sin(a1)])
    d2 = np.array([np.cos(a2), np.sin(a2)])
    keep = np.linalg.norm(pts, axis=1) <= radius
    keep &= pts @ d1 <= rng.uniform(0.35, 0.6) * radius  # flat cut
    notch = (pts @ d2 > 0.45 * radius) & (np.abs(pts @ np.array([-d2[1], d2[0]])) < 0.2 * radius)
    return keep & ~notch


def random_two_layer_phantom(
    rng: np.random.Generator | int | None,
    *,
    layout: str | None = None,
    coding: str | None = None,
    field_mm: float = 230.0,
    nominal_sdd_mm: float = 1000.0,
) -> tuple[Phantom, dict]:
    """A random two-layer phantom (validated through ``phantom_from_dict``) and a dict
    describing how it was drawn."""
    rng = np.random.default_rng(rng)
    layout = layout or str(rng.choice(NEAR_LAYOUTS))
    coding = coding or ("none" if layout == "irregular" else str(rng.choice(CODINGS)))
    pitch = float(rng.uniform(8.0, 14.0))
    z_near = -float(rng.uniform(5.0, 20.0))
    gap = float(rng.uniform(40.0, 100.0))
    z_far = z_near - gap
    small = float(rng.uniform(1.5, 2.5))
    r_field = field_mm / 2 * (nominal_sdd_mm + z_near) / nominal_sdd_mm
    radius = r_field + pitch if coding != "outline" else r_field * float(rng.uniform(0.75, 0.9))
    pts = _lattice(layout, pitch, radius + pitch, rng)
    keep = np.linalg.norm(pts, axis=1) <= radius
    if coding == "outline":
        keep = _asymmetric_outline(pts, radius, rng)
    pts = pts[keep]
    diam = np.full(len(pts), small)
    ratio = None
    if coding == "large":
        ratio = float(rng.uniform(1.3, 2.0))
        frac = float(rng.uniform(0.04, 0.15))
        diam[rng.random(len(pts)) < frac] = small * ratio
    elif coding == "missing":
        frac = float(rng.uniform(0.04, 0.1))
        pts = pts[rng.random(len(pts)) >= frac]
        diam = diam[: len(pts)]
    beads = [
        Bead(f"N{k:03d}", (round(float(x), 3), round(float(y), 3), z_near), float(d), 0)
        for k, ((x, y), d) in enumerate(zip(pts, diam, strict=True))
    ]
    # far layer: inside the cone that reaches the field, a grid or a scatter
    far_layout = str(rng.choice(["grid", "scatter"]))
    r_far = field_mm / 2 * (nominal_sdd_mm + z_far) / nominal_sdd_mm * 0.85
    far_d = float(rng.uniform(2.0, 3.5))
    if far_layout == "grid":
        fp = float(rng.uniform(15.0, 40.0))
        g = _lattice("square", fp, r_far + 2 * fp, rng)
        th = rng.uniform(0, np.pi / 2)
        rot = np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
        g = g @ rot.T + rng.uniform(-fp / 2, fp / 2, 2)
        far = g[np.linalg.norm(g, axis=1) <= r_far]
    else:
        far = _poisson_disc(rng, r_far, float(rng.uniform(15.0, 30.0)))
    if len(far) > 80:
        far = far[rng.choice(len(far), 80, replace=False)]
    for k, (x, y) in enumerate(far):
        beads.append(Bead(f"F{k:03d}", (round(float(x), 3), round(float(y), 3), z_far), far_d, 1))
    ph = Phantom(f"random {layout}/{coding}", beads)
    ph = phantom_from_dict(ph.to_dict())
    info = {
        "layout": layout,
        "coding": coding,
        "pitch_mm": pitch,
        "z_near_mm": z_near,
        "layer_gap_mm": gap,
        "size_ratio": ratio,
        "far_layout": far_layout,
        "near_beads": int(len(pts)),
        "far_beads": int(len(far)),
    }
    return ph, info


def layout_frame(
    phantom: Phantom,
    rng: np.random.Generator | int | None,
    *,
    size: int = 1024,
    hide_fraction: float = 0.0,
    anatomy: np.ndarray | None = None,
    rotation_deg: float | None = None,
    flip: bool | None = None,
):
    """One image-intensifier frame of ``phantom`` with random geometry and distortion."""
    rng = np.random.default_rng(rng)
    spacing = 0.25 * 1024 / size
    src = (rng.uniform(-10, 10), rng.uniform(-10, 10), -rng.uniform(950, 1050))
    geo = SimGeometry(size, size, (spacing, spacing), src)
    dist = IIDistortion.random(rng)
    if rotation_deg is None:
        rotation_deg = float(rng.choice([0, 90, 180, 270]))
    if flip is None:
        flip = bool(rng.random() < 0.3)
    return simulate_phantom_image(
        phantom, geo, dist, rng=rng, hide_fraction=hide_fraction, anatomy=anatomy,
        rotation_deg=rotation_deg, flip=flip, n_spurious=int(rng.integers(0, 8)),
        render_cut_beads=True,
    )  # fmt: skip


def judge(sim, res, phantom: Phantom) -> dict:
    """Identification, true dewarp error and source error of a calibration result."""
    g = sim.geometry
    sp = g.spacing[0]
    wrong = 0
    for b in res.profile["beads"]:
        if not b["used"]:
            continue
        t = sim.true_px.get(b["id"])
        if t is None or np.linalg.norm(np.array(b["detected_px"]) - t) > 1.5:
            wrong += 1
    # true dewarp error on a dense grid inside the region the used near beads cover
    near = np.array(
        [b["detected_px"] for b in res.profile["beads"] if b["plane"] == 0 and b["used"]]
    )
    import cv2

    hull = cv2.convexHull(near.astype(np.float32))
    vv, uu = np.mgrid[0 : g.height : 8, 0 : g.width : 8]
    pts = np.column_stack([uu.ravel(), vv.ravel()]).astype(np.float64)
    inside = np.array(
        [cv2.pointPolygonTest(hull, (float(x), float(y)), False) >= 0 for x, y in pts]
    )
    pts = pts[inside]
    err = np.linalg.norm(res.dewarp_points(pts) - sim.forward_gt(pts), axis=1) * sp
    out = {
        "wrong_ids": int(wrong),
        "dewarp_rms_mm": float(np.sqrt(np.mean(err**2))),
        "dewarp_max_mm": float(err.max()),
        "beads_used": int(res.profile["beads_used"]),
        "far_used": int(res.profile.get("beads_far_used") or 0),
    }
    s = res.profile.get("source_mm")
    if s is not None:
        s, st = np.array(s), np.array(g.source_mm)
        out["source_lateral_mm"] = float(np.linalg.norm(s[:2] - st[:2]))
        out["source_axial_mm"] = float(abs(s[2] - st[2]))
    return out


def layout_case(case: int, seed: int, *, size: int = 1024, anatomy=None) -> dict:
    """One random layout and one frame of it (0 % or 30 % hidden, with or without
    anatomy, by ``case``), calibrated and judged."""
    from calibration.engine.calibrate import CalibrationError, calibrate

    rng = np.random.default_rng(seed)
    ph, info = random_two_layer_phantom(rng)
    hide = 0.3 if case % 2 else 0.0
    an = anatomy if (anatomy is not None and case % 4 >= 2) else None
    sim = layout_frame(ph, rng, size=size, hide_fraction=hide, anatomy=an)
    row = dict(info, case=case, hidden_fraction=hide, anatomy=an is not None,
               rotation_deg=sim.rotation_deg, flip=sim.flip)  # fmt: skip
    t0 = time.perf_counter()
    try:
        res = calibrate(sim.image, ph, sim.geometry.spacing)
    except CalibrationError as exc:
        row.update(ok=False, error=str(exc), seconds=time.perf_counter() - t0)
        return row
    row.update(ok=True, seconds=time.perf_counter() - t0)
    ident = res.profile.get("identification")
    row["identified_by"] = (
        "square-grid code" if ident is None else f"general ({ident.get('decided_by', 'code')})"
    )
    row.update(judge(sim, res, ph))
    return row
