"""Triangulation, epipolar lines, snapping and the angle between views (engine)."""

from __future__ import annotations

import numpy as np
import pytest

from geometry.carm import carm_pose
from planning.engine.views_geometry import (
    ViewGeometry,
    angle_between_views,
    detector_corners_world,
    epipolar_line,
    project,
    snap_to_line,
    triangulate,
)
from tests.planning import helpers


def view(lao: float, cranial: float = 0.0) -> ViewGeometry:
    cam = helpers.camera()
    return ViewGeometry(
        cam.K,
        carm_pose(lao, cranial, helpers.SID, (0, 0, 0)),
        cam.width,
        cam.height,
        pixel_spacing_mm=cam.pixel_spacing_mm,
    )


@pytest.mark.parametrize("lao2", [90.0, 45.0, 30.0])
def test_triangulation_recovers_points_exactly(lao2):
    rng = np.random.default_rng(3)
    v1, v2 = view(0), view(lao2, 10)
    for X in rng.uniform(-60, 60, size=(25, 3)):
        p, gap = triangulate(v1, project(v1, X)[0], v2, project(v2, X)[0])
        np.testing.assert_allclose(p, X, atol=1e-6)
        assert gap < 1e-6


def test_ray_gap_grows_with_inconsistent_picks():
    v1, v2 = view(0), view(90)
    X = np.array([5.0, -10.0, 20.0])
    uv1, uv2 = project(v1, X)[0], project(v2, X)[0]
    # move the view-2 pick 5 px along v (perpendicular to the horizontal epipolar lines)
    _, gap = triangulate(v1, uv1, v2, uv2 + [0, 5.0])
    # 5 px at the detector is 5 mm; at the isocentre (magnification 1000/600) ~3 mm
    assert 2.5 < gap < 3.5


def test_epipolar_line_contains_true_correspondence_and_snapping():
    rng = np.random.default_rng(4)
    v1, v2 = view(10, -5), view(80, 15)
    for X in rng.uniform(-50, 50, size=(20, 3)):
        uv1, uv2 = project(v1, X)[0], project(v2, X)[0]
        line = epipolar_line(v1, uv1, v2)
        assert abs(np.hypot(line[0], line[1]) - 1) < 1e-12
        assert abs(line @ [uv2[0], uv2[1], 1.0]) < 1e-6
        # points on the same ray also lie on the line
        other = X + 80.0 * (X - v1.source_world) / np.linalg.norm(X - v1.source_world)
        assert abs(line @ [*project(v2, other)[0], 1.0]) < 1e-6
        off = uv2 + rng.normal(scale=20, size=2)
        snapped = snap_to_line(off, line)
        assert abs(line @ [*snapped, 1.0]) < 1e-9
        # the snap is the closest point of the line: the offset is along the normal
        d = off - snapped
        assert abs(d[0] * line[1] - d[1] * line[0]) < 1e-9


def test_angle_between_views():
    assert angle_between_views(view(0), view(90)) == pytest.approx(90.0, abs=1e-9)
    assert angle_between_views(view(0), view(30)) == pytest.approx(30.0, abs=1e-9)
    assert angle_between_views(view(0), view(0, 20)) == pytest.approx(20.0, abs=1e-9)


def test_frustum_corners_project_to_image_corners():
    v = view(25, 10)
    corners = detector_corners_world(v)
    uv = project(v, corners)
    np.testing.assert_allclose(
        uv, [[0, 0], [v.width - 1, 0], [v.width - 1, v.height - 1], [0, v.height - 1]], atol=1e-9
    )
    # detector at SDD from the source
    assert np.linalg.norm(corners.mean(axis=0) - v.source_world) == pytest.approx(
        helpers.SDD, rel=1e-9
    )


def test_view_geometry_refuses_non_rigid_pose():
    cam = helpers.camera()
    with pytest.raises(ValueError, match="T_cam_from_world"):
        ViewGeometry(cam.K, np.diag([2.0, 1, 1, 1]), cam.width, cam.height)
