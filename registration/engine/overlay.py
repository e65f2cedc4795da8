"""Overlay of CT bone edges on an X-ray for a pose, as PNG bytes (no Django imports).

Edges come from the bone-only DRR (gradient magnitude, thresholded) and/or from the
silhouette of a bone mesh projected with the camera. They are drawn as a coloured
outline (green by default) over the X-ray shown with a percentile window, with adjustable
opacity. The X-ray must be the dewarped image of the same camera (size ``W x H``).
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import torch

from geometry.camera import project


def drr_edges(bone_drr: np.ndarray, *, relative_threshold: float = 0.2) -> np.ndarray:
    """Bool (H, W) edges of a (bone-only) DRR: Sobel gradient magnitude above
    ``relative_threshold`` times its 99.5th percentile, thinned by non-maximum suppression
    (Canny with those thresholds)."""
    img = np.asarray(bone_drr, dtype=np.float32)
    if img.ndim != 2:
        raise ValueError(f"DRR must be 2-D, got shape {img.shape}")
    top = float(np.percentile(img, 99.5))
    if top <= 0:
        return np.zeros(img.shape, dtype=bool)
    norm = np.clip(img / top, 0.0, 1.0)
    u8 = np.round(norm * 255).astype(np.uint8)
    gx = cv2.Sobel(u8, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(u8, cv2.CV_32F, 0, 1, ksize=3)
    mag = np.hypot(gx, gy)
    ref = float(np.percentile(mag[mag > 0], 99.5)) if (mag > 0).any() else 0.0
    if ref <= 0:
        return np.zeros(img.shape, dtype=bool)
    hi = relative_threshold * ref
    edges = cv2.Canny(gx.astype(np.int16), gy.astype(np.int16), 0.5 * hi, hi, L2gradient=True)
    return edges > 0


def mesh_silhouette(
    vertices: np.ndarray,
    faces: np.ndarray,
    camera: Any,
    T_cam_from_world: np.ndarray,
) -> np.ndarray:
    """Bool (H, W) outline of the projected mesh (all faces in front of the source filled,
    then the boundary of the filled region)."""
    H, W = camera.height, camera.width
    verts = np.asarray(vertices, dtype=np.float64)
    T = np.asarray(T_cam_from_world, dtype=np.float64)
    depth = verts @ T[2, :3] + T[2, 3]
    uv = project(verts, camera.K, T)
    tri = np.asarray(faces, dtype=np.int64)
    tri = tri[(depth[tri] > 1e-6).all(axis=1)]
    fill = np.zeros((H, W), np.uint8)
    if tri.size:
        pts = np.round(uv[tri] * 16).astype(np.int32)  # 4 fractional bits
        # skip triangles far outside the image (keeps cv2 coordinates in range)
        inside = (np.abs(uv[tri]) < 4 * max(H, W)).all(axis=(1, 2))
        for poly in pts[inside]:  # one by one: fillPoly's even-odd rule would punch holes
            cv2.fillConvexPoly(fill, poly, 1, lineType=cv2.LINE_8, shift=4)
    outline = fill - cv2.erode(fill, np.ones((3, 3), np.uint8))
    return outline.astype(bool)


def display_image(
    xray: np.ndarray, *, invert: bool = False, field: np.ndarray | None = None
) -> np.ndarray:
    """uint8 (H, W) display of any image: the one windowing rule of every page, job and
    picture. The 0.5-99.5 percentile window is taken inside the exposed field (``field``,
    (H, W) bool; by default :func:`registration.engine.intensity.field_mask`, so a black
    collimated border or flat air does not flatten the contrast); ``invert`` shows
    MONOCHROME1 (or a bone-dark DRR) the other way round."""
    from registration.engine.intensity import field_mask

    x = np.asarray(xray, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"X-ray must be a 2-D image, got shape {x.shape}")
    finite = np.isfinite(x)
    x = np.where(finite, x, np.min(x[finite]) if finite.any() else 0.0)
    if field is None:
        field = field_mask(x.astype(np.float32))
    inside = x[np.asarray(field, dtype=bool) & finite]
    lo, hi = np.percentile(inside if inside.size else x, [0.5, 99.5])
    scaled = np.clip((x - lo) / max(hi - lo, 1e-12), 0.0, 1.0)
    if invert:
        scaled = 1.0 - scaled
    return np.round(scaled * 255).astype(np.uint8)


def overlay_png(
    xray: np.ndarray,
    edges: np.ndarray,
    *,
    color: tuple[int, int, int] = (0, 255, 0),
    opacity: float = 0.8,
    thickness: int = 1,
    invert: bool = False,
) -> bytes:
    """PNG bytes: the X-ray (grey, windowed) with ``edges`` blended in ``color`` (RGB)."""
    if not 0.0 <= opacity <= 1.0:
        raise ValueError(f"opacity must be between 0 and 1, got {opacity}")
    grey = display_image(xray, invert=invert)
    edges = np.asarray(edges, dtype=bool)
    if edges.shape != grey.shape:
        raise ValueError(f"edge map {edges.shape} does not match the X-ray {grey.shape}")
    if thickness > 1:
        k = np.ones((thickness, thickness), np.uint8)
        edges = cv2.dilate(edges.astype(np.uint8), k).astype(bool)
    bgr = cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR).astype(np.float32)
    col = np.array(color[::-1], dtype=np.float32)
    bgr[edges] = (1.0 - opacity) * bgr[edges] + opacity * col
    ok, buf = cv2.imencode(".png", np.round(bgr).astype(np.uint8))
    if not ok:  # pragma: no cover - cv2 failure
        raise ValueError("PNG encoding failed")
    return buf.tobytes()


def bone_overlay_png(
    xray: np.ndarray,
    renderer: Any,
    camera: Any,
    T_cam_from_world: np.ndarray,
    *,
    mode: str = "drr",
    mesh: Any = None,
    opacity: float = 0.8,
    color: tuple[int, int, int] = (0, 255, 0),
    samples_per_ray: int = 192,
    thickness: int = 1,
    invert: bool = False,
) -> bytes:
    """Overlay of the CT's bone edges for a pose on ``xray`` (H, W of ``camera``).

    ``renderer`` is a :class:`registration.engine.drr.DrrRenderer` (for ``mode`` "drr" or
    "both"); ``mesh`` a :class:`registration.engine.mesh.Mesh` (for "mesh" or "both").
    """
    if mode not in ("drr", "mesh", "both"):
        raise ValueError(f"mode must be drr, mesh or both, got {mode!r}")
    xray = np.asarray(xray)
    if xray.shape != (camera.height, camera.width):
        raise ValueError(
            f"X-ray size {xray.shape[1]}x{xray.shape[0]} does not match the camera "
            f"{camera.width}x{camera.height}"
        )
    edges = np.zeros(xray.shape, dtype=bool)
    if mode in ("drr", "both"):
        if renderer is None:
            raise ValueError("a DRR renderer is needed for DRR edges")
        with torch.no_grad():
            drr = renderer.render(
                torch.as_tensor(np.asarray(T_cam_from_world, dtype=np.float64)),
                torch.as_tensor(np.array(camera.K)),
                camera.height,
                camera.width,
                samples_per_ray=samples_per_ray,
                bone_only=True,
            )[0]
        edges |= drr_edges(drr.cpu().numpy())
    if mode in ("mesh", "both"):
        if mesh is None:
            raise ValueError("a bone mesh is needed for mesh silhouettes")
        edges |= mesh_silhouette(mesh.vertices, mesh.faces, camera, T_cam_from_world)
    return overlay_png(
        xray, edges, color=color, opacity=opacity, thickness=thickness, invert=invert
    )
