"""Where a registration starts (no Django): the network's PnP pose, a given initial pose
(header C-arm angles or ``--init``) and the DRR library's retrieved views
(:mod:`registration.engine.library`). All compete on the same similarity in the
pipeline's coarse search; this module names them and produces the library's.
"""

from __future__ import annotations

import time

import numpy as np

from geometry.camera import Camera
from registration.engine.library import LibraryGrid, library_for, retrieve

# start name in the pipeline -> the kind reported in stages["start"]["winner"]
NETWORK, LIBRARY = "network", "library"


def start_kind(name: str, initial_kind: str = "init") -> str:
    """``"network"`` for the PnP start, ``initial_kind`` ("header" or "init") for the given
    initial pose, ``"library"`` for a library view; anything else unchanged."""
    if name == "pnp":
        return NETWORK
    if name == "initial":
        return initial_kind
    if name.startswith("library"):
        return LIBRARY
    return name


def bone_extent(renderer, volume) -> tuple[np.ndarray, float]:
    """(bone-box centre LPS mm, radius mm of the box's bounding sphere) of the CT, kept on
    the renderer."""
    cached = renderer.__dict__.get("_bone_extent")
    if cached is None:
        from registration.engine.dataset import bone_box

        box = bone_box(volume, renderer.bone_threshold_hu)
        cached = (np.asarray(box.centre, np.float64), float(np.linalg.norm(box.half_extent)))
        renderer.__dict__["_bone_extent"] = cached
    return cached


def library_starts(renderer, volume, image: np.ndarray, valid: np.ndarray, camera: Camera,
                   grid: LibraryGrid | None = None) -> tuple[dict[str, np.ndarray], dict]:
    """The library's best distinct views for this X-ray as starts ``{"library": T,
    "library_2": T, ...}`` (``T_cam_from_world``, best first) and the figures of the
    retrieval (seconds to build the library, its size, each start's masked NCC, angles)."""
    grid = grid or LibraryGrid()
    t0 = time.perf_counter()
    centre, radius = bone_extent(renderer, volume)
    lib = library_for(renderer, centre, radius, camera.K, image.shape,
                      camera.source_to_detector_mm, grid)
    t_build = time.perf_counter() - t0
    matches = retrieve(lib, image, valid, camera.K, grid)
    starts = {("library" if i == 0 else f"library_{i + 1}"): m.T_cam_from_world
              for i, m in enumerate(matches)}
    figures = {
        "library_views": int(len(lib.angles)),
        "library_px": int(lib.images.shape[-1]),
        "library_build_seconds": round(t_build, 4),
        "retrieved": [{"lao_deg": m.lao_deg, "cranial_deg": m.cranial_deg,
                       "spin_deg": m.spin_deg, "depth_scale": m.scale,
                       "score": round(m.score, 4)} for m in matches],
    }
    return starts, figures
