"""Two-view geometry: midpoint triangulation with ray gap, epipolar lines, view angle."""

import numpy as np
import pytest

from geometry.twoview import (
    View,
    angle_between_views,
    epipolar_distance,
    epipolar_line,
    triangulate_midpoint,
)


def _pose(angle_deg, sod=600.0):
    """C-arm orbiting about the world y axis; isocentre at the world origin."""
    a = np.deg2rad(angle_deg)
    r_wc = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
    centre = -sod * r_wc[:, 2]
    t = np.eye(4)
    t[:3, :3] = r_wc.T
    t[:3, 3] = -r_wc.T @ centre
    return t


K = np.array([[4000.0, 0, 262.0], [0, 4000.0, 250.0], [0, 0, 1]])


def test_triangulation_exact_and_gap():
    va, vb = View(K, _pose(0)), View(K, _pose(90))
    x = np.array([12.0, -20.0, 7.0])
    tri = triangulate_midpoint(va, va.project(x)[0], vb, vb.project(x)[0])
    np.testing.assert_allclose(tri.point_world, x, atol=1e-6)
    assert tri.gap_mm < 1e-6
    assert tri.angle_deg == pytest.approx(90.0, abs=2.0)
    # a pick off by 10 px in view b gives a gap of about 10 px at the object
    uvb = vb.project(x)[0] + [0, 10]
    tri2 = triangulate_midpoint(va, va.project(x)[0], vb, uvb)
    mm_per_px_at_object = (600.0 + 7.0) / 4000.0
    assert tri2.gap_mm == pytest.approx(10 * mm_per_px_at_object, rel=0.05)


def test_epipolar_line_contains_the_match():
    rng = np.random.default_rng(0)
    va, vb = View(K, _pose(-20)), View(K, _pose(55))
    for x in rng.uniform(-40, 40, size=(5, 3)):
        line = epipolar_line(va, va.project(x)[0], vb)
        assert np.hypot(line[0], line[1]) == pytest.approx(1.0)
        assert abs(epipolar_distance(line, vb.project(x)[0])) < 1e-6
        # another point on a different ray is off the line
        assert abs(epipolar_distance(line, vb.project(x + [0, 15, 0])[0])) > 1.0


def test_angle_between_views():
    assert angle_between_views(View(K, _pose(10)), View(K, _pose(100))) == pytest.approx(90.0)
    assert angle_between_views(View(K, _pose(0)), View(K, _pose(-35))) == pytest.approx(35.0)


def test_parallel_rays_refused():
    va = View(K, _pose(0))
    with pytest.raises(ValueError, match="parallel"):
        triangulate_midpoint(va, (262.0, 250.0), va, (262.0, 250.0))
