"""One-page plan report rendered with OpenCV (PNG) and wrapped into a PDF (reportlab).

No Django. Input is a plan snapshot (``services.snapshot_for`` layout) and the two
display images (uint8 greyscale). Text is ASCII (OpenCV's Hershey fonts).
"""

from __future__ import annotations

import io
from typing import Any

import cv2
import numpy as np

from planning.engine.views_geometry import ViewGeometry, detector_corners_world, project

PAGE_W, PAGE_H = 1240, 1754  # A4 at 150 dpi
FONT = cv2.FONT_HERSHEY_SIMPLEX


def _bgr(colour: str) -> tuple[int, int, int]:
    c = colour.lstrip("#")
    try:
        r, g, b = int(c[0:2], 16), int(c[2:4], 16), int(c[4:6], 16)
    except (ValueError, IndexError):
        r, g, b = 255, 136, 0
    return (b, g, r)


def _ascii(text: str) -> str:
    return str(text).replace("°", " deg").replace("Ø", "diam").encode("ascii", "replace").decode()


def _text(
    img: np.ndarray,
    text: str,
    xy: tuple[int, int],
    size: float = 0.55,
    colour=(20, 20, 20),
    bold: bool = False,
) -> None:
    cv2.putText(img, _ascii(text), xy, FONT, size, colour, 2 if bold else 1, cv2.LINE_AA)


def _fit(image: np.ndarray, box_w: int, box_h: int) -> tuple[np.ndarray, float]:
    h, w = image.shape[:2]
    s = min(box_w / w, box_h / h)
    out = cv2.resize(
        image, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA
    )
    return out, s


def _view_panel(
    image: np.ndarray, view: ViewGeometry, trajectories: list[dict], key: str, box: int
) -> np.ndarray:
    small, s = _fit(image, box, box)
    panel = cv2.cvtColor(small, cv2.COLOR_GRAY2BGR) if small.ndim == 2 else small.copy()
    for t in trajectories:
        picks = t.get("picks", {})
        pts = [picks.get(end, {}).get(key) for end in ("entry", "target")]
        col = _bgr(t.get("colour", "#ff8800"))
        if t.get("complete"):
            uv = project(view, np.array([t["entry_world"], t["target_world"]]))
            pts = [uv[0], uv[1]]
        scaled = [
            None if p is None else (int(round((p[0] + 0.5) * s)), int(round((p[1] + 0.5) * s)))
            for p in pts
        ]
        if scaled[0] and scaled[1]:
            cv2.line(panel, scaled[0], scaled[1], col, 2, cv2.LINE_AA)
        for p in scaled:
            if p:
                cv2.circle(panel, p, 4, col, -1, cv2.LINE_AA)
        if scaled[0]:
            _text(panel, t.get("name", ""), (scaled[0][0] + 6, scaled[0][1] - 6), 0.45, col)
    return panel


def _scene_panel(views: list[ViewGeometry], trajectories: list[dict], w: int, h: int) -> np.ndarray:
    """Static oblique orthographic 3D drawing: frusta, trajectories, LPS axes."""
    img = np.full((h, w, 3), 255, np.uint8)
    az, el = np.deg2rad(35.0), np.deg2rad(20.0)
    # screen axes: x right, y up, built from azimuth about +z (S) and elevation
    right = np.array([np.cos(az), np.sin(az), 0.0])
    fwd = np.array([-np.sin(az), np.cos(az), 0.0])
    up = np.array([0.0, 0.0, 1.0]) * np.cos(el) - fwd * np.sin(el)
    segments: list[tuple[np.ndarray, np.ndarray, tuple[int, int, int], int]] = []
    colours = [(180, 119, 31), (40, 39, 214)]
    for i, v in enumerate(views):
        src = v.source_world
        corners = detector_corners_world(v)
        for c in corners:
            segments.append((src, c, colours[i % 2], 1))
        for a in range(4):
            segments.append((corners[a], corners[(a + 1) % 4], colours[i % 2], 2))
    for t in trajectories:
        if t.get("complete"):
            segments.append(
                (
                    np.array(t["entry_world"]),
                    np.array(t["target_world"]),
                    _bgr(t.get("colour", "#ff8800")),
                    5,
                )
            )
    if not segments:
        return img
    pts = np.array([p for s in segments for p in s[:2]])
    centre = pts.mean(axis=0)
    scr = np.stack([(pts - centre) @ right, (pts - centre) @ up], axis=1)
    span = float(np.max(np.abs(scr))) or 1.0
    k = 0.45 * min(w, h) / span

    def to_px(p: np.ndarray) -> tuple[int, int]:
        q = p - centre
        return (int(round(w / 2 + k * (q @ right))), int(round(h / 2 - k * (q @ up))))

    for a, b, col, th in segments:
        cv2.line(img, to_px(a), to_px(b), col, th, cv2.LINE_AA)
    for i, v in enumerate(views):
        _text(img, f"view {i + 1}", to_px(v.source_world), 0.5, colours[i % 2])
    if not views:
        for t in trajectories:
            if t.get("complete"):
                p = to_px(np.array(t["entry_world"]))
                _text(
                    img,
                    f"{t.get('name', '')} entry",
                    (p[0] + 8, p[1] - 8),
                    0.5,
                    _bgr(t.get("colour", "#000000")),
                )
        bar_mm = 10.0 ** np.floor(np.log10(max(0.3 * min(w, h) / k, 1e-3)))
        x0, y0 = w - 40 - int(bar_mm * k), h - 30
        cv2.line(img, (x0, y0), (x0 + int(round(bar_mm * k)), y0), (40, 40, 40), 2)
        _text(img, f"{bar_mm:g} mm", (x0, y0 - 8), 0.45, (40, 40, 40))
    origin = (60, h - 40)
    for vec, label in (
        (np.array([1.0, 0, 0]), "L"),
        (np.array([0, 1.0, 0]), "P"),
        (np.array([0, 0, 1.0]), "S"),
    ):
        end = (int(origin[0] + 35 * (vec @ right)), int(origin[1] - 35 * (vec @ up)))
        cv2.arrowedLine(img, origin, end, (60, 60, 60), 2, cv2.LINE_AA, tipLength=0.25)
        _text(img, label, (end[0] + 3, end[1] + 3), 0.5, (60, 60, 60))
    cv2.rectangle(img, (0, 0), (w - 1, h - 1), (200, 200, 200), 1)
    return img


def render_report_png(snapshot: dict, images: list[np.ndarray], header: dict[str, Any]) -> bytes:
    """The one-page report as PNG bytes: header, both views with the trajectories, a 3D
    drawing and the numbers of every trajectory."""
    page = np.full((PAGE_H, PAGE_W, 3), 255, np.uint8)
    views = [ViewGeometry.from_json(v) for v in snapshot.get("views", [])]
    trajectories = snapshot.get("trajectories", [])
    y = 60
    _text(page, f"OrthoFuse two-view plan: {header.get('plan', '')}", (50, y), 0.9, bold=True)
    y += 35
    _text(
        page,
        f"Patient {header.get('patient', '')}   version {header.get('version', '')} by "
        f"{header.get('author', '')} at {header.get('created_at', '')}",
        (50, y),
    )
    y += 28
    frame = (
        "CT (LPS, both views registered)"
        if snapshot.get("world_frame") == "ct"
        else "C-arm frame (not registered)"
    )
    _text(
        page,
        f"3D frame: {frame};  angle between views {snapshot.get('angle_between_views_deg', 0):.1f} deg",
        (50, y),
    )
    for warning in snapshot.get("warnings", [])[:3]:
        y += 24
        _text(page, f"Warning: {warning}"[:140], (50, y), 0.45, (0, 90, 200))
    y += 20
    box = 560
    for i, (img, v) in enumerate(zip(images, views, strict=False)):
        panel = _view_panel(img, v, trajectories, f"view{i + 1}", box)
        x0 = 50 + i * (box + 30)
        page[y + 30 : y + 30 + panel.shape[0], x0 : x0 + panel.shape[1]] = panel
        _text(page, f"View {i + 1}: pose from {v.source.get('pose', '?')}"[:75], (x0, y + 20), 0.42)
    y += box + 50
    scene = _scene_panel(views, trajectories, 520, 480)
    page[y : y + scene.shape[0], 50 : 50 + scene.shape[1]] = scene
    x = 600
    ty = y + 20
    _text(page, "Trajectories (mm, deg)", (x, ty), 0.6, bold=True)
    for t in trajectories:
        ty += 30
        _text(
            page, f"{t.get('name', '')}", (x, ty), 0.55, _bgr(t.get("colour", "#000000")), bold=True
        )
        ty += 22
        _text(
            page,
            f"diam {t.get('diameter_mm', 0):.1f}  length {t.get('length_mm') or 0:.1f}",
            (x + 10, ty),
            0.45,
        )
        if t.get("complete"):
            ty += 22
            _text(
                page,
                f"measured length {t['measured_length_mm']:.1f}  ray gaps {t['entry_gap_mm']:.2f} / {t['target_gap_mm']:.2f}",
                (x + 10, ty),
                0.45,
            )
            ty += 22
            _text(
                page,
                f"view angles {t['image_angle_view1_deg']:.1f} / {t['image_angle_view2_deg']:.1f}",
                (x + 10, ty),
                0.45,
            )
            e, g = t["entry_world"], t["target_world"]
            ty += 22
            _text(
                page,
                f"entry ({e[0]:.1f}, {e[1]:.1f}, {e[2]:.1f})  target ({g[0]:.1f}, {g[1]:.1f}, {g[2]:.1f})",
                (x + 10, ty),
                0.42,
            )
            if t.get("anatomical") and snapshot.get("world_frame") == "ct":
                a = t["anatomical"]
                ty += 22
                _text(
                    page,
                    f"inclination {a['inclination_deg']:.1f}  anteversion {a['anteversion_deg']:.1f}  cranial {a['cranial_deg']:.1f}",
                    (x + 10, ty),
                    0.45,
                )
        else:
            ty += 22
            _text(page, "incomplete (not all four picks)", (x + 10, ty), 0.45, (120, 120, 120))
        if ty > PAGE_H - 80:
            _text(page, "... (more trajectories in the JSON export)", (x, PAGE_H - 50), 0.45)
            break
    if any(t.get("complete") for t in trajectories):
        zy = max(ty + 40, y + 500)
        zh = min(600, PAGE_H - zy - 60)
        if zh > 200:
            _text(page, "3D close-up of the trajectories (same orientation)", (50, zy - 10), 0.5)
            close = _scene_panel([], trajectories, 1140, zh)
            page[zy : zy + zh, 50 : 50 + 1140] = close
    ok, buf = cv2.imencode(".png", page)
    if not ok:
        raise ValueError("could not encode the report")
    return buf.tobytes()


def png_to_pdf(png: bytes) -> bytes:
    """Wrap a page image into a one-page A4 PDF (reportlab)."""
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.utils import ImageReader
    from reportlab.pdfgen import canvas

    out = io.BytesIO()
    c = canvas.Canvas(out, pagesize=A4)
    w, h = A4
    c.drawImage(ImageReader(io.BytesIO(png)), 0, 0, width=w, height=h)
    c.showPage()
    c.save()
    return out.getvalue()
