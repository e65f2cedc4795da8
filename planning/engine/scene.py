"""Plotly trace dictionaries for the 3D plan view (no Django, no Plotly import needed).

World frame mm (CT LPS when registered). Traces are plain dicts ready for
``Plotly.newPlot``/``plotly.graph_objects.Figure(data=...)``.
"""

from __future__ import annotations

import numpy as np

from planning.engine.views_geometry import ViewGeometry, detector_corners_world


def frustum_trace(view: ViewGeometry, name: str, colour: str) -> dict:
    """Lines from the source to the four detector corners plus the detector outline."""
    s = view.source_world
    c = detector_corners_world(view)
    pts = []
    for corner in c:
        pts += [s, corner, [None] * 3]
    pts += [c[0], c[1], c[2], c[3], c[0]]
    xyz = [[None if p[0] is None else float(p[i]) for p in pts] for i in range(3)]
    return {
        "type": "scatter3d",
        "mode": "lines",
        "x": xyz[0],
        "y": xyz[1],
        "z": xyz[2],
        "line": {"color": colour, "width": 3},
        "name": name,
        "legendgroup": name,
        "hoverinfo": "name",
    }


def source_marker(view: ViewGeometry, name: str, colour: str) -> dict:
    s = view.source_world
    return {
        "type": "scatter3d",
        "mode": "markers+text",
        "x": [float(s[0])],
        "y": [float(s[1])],
        "z": [float(s[2])],
        "text": [name],
        "marker": {"size": 5, "color": colour},
        "name": f"{name} source",
        "showlegend": False,
    }


def bone_mesh(
    volume_hu: np.ndarray, affine: np.ndarray, threshold_hu: float = 250.0, max_faces: int = 60000
) -> dict | None:
    """Iso-surface of bone from a CT volume ``(k, j, i)`` in HU with ``affine`` (voxel
    ``(i, j, k, 1)`` -> LPS mm), as a Plotly ``mesh3d`` trace; None when no bone."""
    from skimage.measure import marching_cubes

    vol = np.asarray(volume_hu, dtype=np.float32)
    if vol.ndim != 3 or min(vol.shape) < 2 or float(vol.max()) < threshold_hu:
        return None
    step = max(1, int(np.ceil((vol.size / 2.0e6) ** (1.0 / 3.0))))  # at most ~2 M voxels
    while True:
        sub = vol[::step, ::step, ::step]
        if min(sub.shape) < 2:
            return None
        try:
            verts, faces, _, _ = marching_cubes(sub, level=threshold_hu, step_size=1)
        except (ValueError, RuntimeError):
            return None
        if len(faces) <= max_faces:
            break
        step += 1
    kji = verts * step
    ijk1 = np.concatenate([kji[:, ::-1], np.ones((len(kji), 1))], axis=1)
    xyz = ijk1 @ np.asarray(affine, dtype=np.float64).T
    return {
        "type": "mesh3d",
        "x": np.round(xyz[:, 0], 2).tolist(),
        "y": np.round(xyz[:, 1], 2).tolist(),
        "z": np.round(xyz[:, 2], 2).tolist(),
        "i": faces[:, 0].tolist(),
        "j": faces[:, 1].tolist(),
        "k": faces[:, 2].tolist(),
        "color": "#e8dcc0",
        "opacity": 0.35,
        "name": f"bone (> {threshold_hu:g} HU)",
        "hoverinfo": "skip",
        "showlegend": True,
    }


def plan_traces(views: list[ViewGeometry]) -> list[dict]:
    colours = ("#1f77b4", "#d62728")
    traces = []
    for i, v in enumerate(views):
        traces.append(frustum_trace(v, f"view {i + 1} C-arm", colours[i % 2]))
        marker = source_marker(v, f"view {i + 1}", colours[i % 2])
        marker["legendgroup"] = f"view {i + 1} C-arm"
        traces.append(marker)
    return traces
