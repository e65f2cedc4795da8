"""Out-of-distribution benchmark shots of one CT, written to files as a user hands them over.

Rendered by nanodrr (:mod:`registration.bench.nanodrr_render`), formed by
:mod:`registration.bench.xray_chain`, posed by :mod:`registration.bench.ood_poses`,
written by :mod:`registration.bench.shot_io`. A quarter of the shots are DICOM (XA or RF)
with the C-arm angles in the header, the rest PNG + camera.json; the four stored forms
(linear, log, mono1, gamma) come in equal shares. Seeded: the same seed and CT give the
same shots. Frames: LPS mm, OpenCV camera, ``T_cam_from_world``.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from registration.bench import ood_poses, shot_io, xray_chain
from registration.bench.nanodrr_render import render_line_integral, subject_from_volume

#: voxels above this (HU) are bone for the targets and the aim of the C-arm
BONE_HU = 250.0
MAX_TARGETS = 200


@dataclass
class OodShot:
    """One written shot: ``path`` (PNG or DICOM), ``camera_path`` (camera.json), its
    ``geometry`` (with the true pose), chain ``params``, ``targets`` (N, 3) LPS mm bone
    points in view for the mTRE, ``header_angles`` (DICOM with C-arm angles)."""

    index: int
    path: Path
    camera_path: Path
    file_format: str
    modality: str | None
    photometric: str
    geometry: ood_poses.ShotGeometry
    params: xray_chain.ChainParams
    targets: np.ndarray

    @property
    def kind(self) -> str:
        return self.geometry.kind

    @property
    def header_angles(self) -> bool:
        return self.file_format == "dicom"

    def manifest(self) -> dict:
        g = self.geometry
        return {"index": self.index, "file": self.path.name, "camera": self.camera_path.name,
                "kind": g.kind, "family": g.family, "format": self.file_format,
                "modality": self.modality, "photometric": self.photometric,
                "display": self.params.display, "lao_deg": g.lao_deg,
                "cranial_deg": g.cranial_deg, "spin_deg": g.spin_deg, "sid_mm": g.sid_mm,
                "sdd_mm": g.sdd_mm, "isocentre_lps_mm": g.isocentre_lps.tolist(),
                "window": g.window, "T_cam_from_world": g.T_true.tolist(),
                "chain": self.params.to_json(), "n_targets": len(self.targets)}


def bone_points(array_kji: np.ndarray, affine_lps: np.ndarray, *, max_points: int = 20000,
                seed: int = 0) -> np.ndarray:
    """(M, 3) LPS mm centres of (a seeded subset of) voxels above :data:`BONE_HU`."""
    k, j, i = np.nonzero(np.asarray(array_kji) > BONE_HU)
    if len(i) == 0:
        raise ValueError("the CT has no voxel above 250 HU (no bone to aim at)")
    sel = np.random.default_rng(seed).choice(len(i), min(max_points, len(i)), replace=False)
    ijk1 = np.stack([i[sel], j[sel], k[sel], np.ones(len(sel))], 1).astype(np.float64)
    return (ijk1 @ np.asarray(affine_lps, np.float64).T)[:, :3]


def _in_view(points: np.ndarray, K: np.ndarray, T: np.ndarray, w: int,
             h: int) -> tuple[np.ndarray, float]:
    """(which points project into the w x h image, share of its 8 x 8 cells they touch)."""
    x = points @ T[:3, :3].T + T[:3, 3]
    uv = (x @ K.T)[:, :2] / x[:, 2:3]
    ok = (x[:, 2] > 0) & (uv[:, 0] >= 0) & (uv[:, 0] <= w - 1) & (uv[:, 1] >= 0) & (uv[:, 1] <= h - 1)
    cells = np.unique((uv[ok, 1] * 8 // h).astype(int) * 8 + (uv[ok, 0] * 8 // w).astype(int))
    return ok, len(cells) / 64.0


def generate_shots(volume, ct_name: str, out_dir: Path, n: int, seed: int, *,
                   n_samples: int = 192, log=None) -> list[OodShot]:
    """Render and write ``n`` shots of ``volume`` (a ``CTVolume``: array (k, j, i) HU, LPS
    affine) into ``out_dir``; returns them in order."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    base = [int(seed), zlib.crc32(ct_name.encode()) & 0x7FFFFFFF]
    bone = bone_points(volume.array, volume.affine, seed=seed)
    centre = np.median(bone, axis=0)
    subject = subject_from_volume(volume.array, volume.affine)
    run_rng = np.random.default_rng(base + [1])
    displays = run_rng.permutation(np.resize(np.array(xray_chain.DISPLAYS), n))
    dicom = run_rng.permutation(np.arange(n) < max(1, n // 4) if n >= 4 else np.zeros(n, bool))
    shots = []
    for i, (family, close) in enumerate(ood_poses.plan_kinds(n)):
        rng = np.random.default_rng(base + [2, i])
        for _ in range(20):  # a view that shows some bone (a surgeon aims at the bone)
            g = ood_poses.sample_geometry(family, close, centre, rng)
            seen, cover = _in_view(bone, g.K, g.T_true, g.width, g.height)
            if cover >= 0.5:  # bone behind at least half of the image
                break
        L = render_line_integral(subject, g.K, g.width, g.height, g.T_true, g.sdd_mm,
                                 n_samples=n_samples)
        p = xray_chain.sample_params(rng, str(displays[i]))
        counts = xray_chain.detected_counts(L, p, np.random.default_rng(base + [3, i]))
        fmt = "dicom" if dicom[i] else "png"
        pixels, phot = xray_chain.encode(counts, p, fmt)
        stem = out_dir / f"shot_{i:03d}"
        cam_path = shot_io.write_camera_json(stem.with_suffix(".camera.json"), g.camera_json())
        modality = None
        if fmt == "dicom":
            modality = "XA" if i % 2 == 0 else "RF"
            path = shot_io.write_dicom(stem.with_suffix(".dcm"), pixels, phot, modality=modality,
                                       pitch_mm=g.pitch_mm, sdd_mm=g.sdd_mm, sid_mm=g.sid_mm,
                                       lao_deg=g.lao_deg, cranial_deg=g.cranial_deg)
        else:
            path = shot_io.write_png(stem.with_suffix(".png"), pixels)
        tgt = bone[seen] if seen.sum() >= 20 else bone
        tgt = tgt[np.random.default_rng(base + [4, i]).choice(len(tgt), min(MAX_TARGETS, len(tgt)),
                                                              replace=False)]
        shots.append(OodShot(i, path, cam_path, fmt, modality, phot, g, p, tgt))
        if log:
            log(f"shot {i + 1}/{n}: {g.kind} {fmt} {p.display} LAO {g.lao_deg:.0f} "
                f"cran {g.cranial_deg:.0f}")
    return shots
