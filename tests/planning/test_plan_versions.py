"""Plans: geometry sources and warnings, versions saved through the API, exports."""

from __future__ import annotations

import json

import numpy as np
import pytest
from django.urls import reverse

from tests.planning import helpers
from webapp.planning import services
from webapp.planning.models import PlanVersion

ENTRY = np.array([10.0, -20.0, 15.0])
TARGET = np.array([-5.0, 25.0, -10.0])


def traj_payload(name="S1", entry=ENTRY, target=TARGET, lao2=90.0):
    return {
        "name": name,
        "colour": "#ff8800",
        "diameter_mm": 6.5,
        "length_mm": 45,
        "picks": helpers.picks_for(entry, target, helpers.pose(0), helpers.pose(lao2)),
    }


def test_geometry_from_carm_angles_without_calibration(two_views):
    geo = services.plan_geometry(*two_views)
    assert geo.world_frame == "carm"
    assert geo.angle_deg == pytest.approx(90.0, abs=1e-6)
    assert any("lacks a calibration" in w for w in geo.warnings)
    assert not any("apart" in w for w in geo.warnings)
    assert "C-arm angles" in geo.views[0].source["pose"]
    np.testing.assert_allclose(geo.views[1].T_cam_from_world, helpers.pose(90), atol=1e-12)


def test_close_views_warned(media, patient_a, carm):
    x1 = helpers.make_xray(patient_a, carm, 0.0)
    x2 = helpers.make_xray(patient_a, carm, 20.0)
    geo = services.plan_geometry(x1, x2)
    assert "only 20° apart" in geo.warnings[0]


def test_registered_views_use_ct_frame(two_views, patient_a):
    from webapp.records.models import CTStudy
    from webapp.xray_registration.models import Registration

    study = CTStudy.objects.create(patient=patient_a, status="ready")
    shift = np.eye(4)
    shift[:3, 3] = [5.0, -3.0, 2.0]
    for xray, lao in zip(two_views, (0, 90), strict=True):
        Registration.objects.create(
            xray=xray,
            study=study,
            status="ok",
            T_cam_from_world=(helpers.pose(lao) @ shift).tolist(),
        )
    geo = services.plan_geometry(*two_views)
    assert geo.world_frame == "ct" and geo.study_id == study.pk
    assert "registration #" in geo.views[0].source["pose"]
    # a point picked through the registered poses triangulates in CT coordinates
    X_ct = np.array([1.0, 2.0, 3.0])
    uv1 = helpers.project(helpers.pose(0) @ shift, X_ct)[0]
    uv2 = helpers.project(helpers.pose(90) @ shift, X_ct)[0]
    from planning.engine.views_geometry import triangulate

    p, gap = triangulate(geo.views[0], uv1, geo.views[1], uv2)
    np.testing.assert_allclose(p, X_ct, atol=1e-6)


def test_missing_geometry_refused(media, patient_a):
    from webapp.records.models import XrayImage

    x1 = helpers.make_xray(patient_a, None, 0.0)
    x2 = helpers.make_xray(patient_a, None, 90.0)
    XrayImage.objects.filter(pk=x2.pk).update(distance_source_to_detector_mm=None)
    x2.refresh_from_db()
    with pytest.raises(ValueError, match="geometry is unknown"):
        services.plan_geometry(x1, x2)


def test_save_versions_through_api(client, plan_a, surgeon_a):
    client.force_login(surgeon_a)
    url = reverse("planning-api:plan-versions", args=[plan_a.pk])
    r = client.post(
        url,
        {"trajectories": [traj_payload()], "note": "first screw"},
        content_type="application/json",
    )
    assert r.status_code == 201, r.content
    body = r.json()
    assert body["number"] == 2  # version 1 is the empty plan
    assert "first screw" in body["summary"] and "added S1" in body["summary"]
    t = body["snapshot"]["trajectories"][0]
    np.testing.assert_allclose(t["entry_world"], ENTRY, atol=1e-6)
    np.testing.assert_allclose(t["target_world"], TARGET, atol=1e-6)
    assert t["entry_gap_mm"] < 1e-6
    assert t["measured_length_mm"] == pytest.approx(np.linalg.norm(TARGET - ENTRY))
    assert "ct" not in t  # not registered: no CT coordinates
    # move the target: a new version that says what changed
    r = client.post(
        url, {"trajectories": [traj_payload(target=TARGET + 3)]}, content_type="application/json"
    )
    assert r.json()["number"] == 3 and "moved picks of S1" in r.json()["summary"]
    assert PlanVersion.objects.filter(plan=plan_a).count() == 3
    r = client.get(reverse("planning-api:plan-version", args=[plan_a.pk, 2]))
    np.testing.assert_allclose(
        r.json()["snapshot"]["trajectories"][0]["target_world"], TARGET, atol=1e-6
    )


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda t: t.update(colour="red"), "colour must be #rrggbb"),
        (lambda t: t.update(diameter_mm=-2), "diameter_mm must be between"),
        (lambda t: t["picks"]["entry"].update(view1=["a", 3]), "entry view 1 u must be a number"),
        (lambda t: t.update(name=""), "needs a name"),
    ],
)
def test_bad_trajectories_refused_and_nothing_stored(client, plan_a, surgeon_a, mutate, message):
    client.force_login(surgeon_a)
    t = traj_payload()
    mutate(t)
    r = client.post(
        reverse("planning-api:plan-versions", args=[plan_a.pk]),
        {"trajectories": [t]},
        content_type="application/json",
    )
    assert r.status_code == 400
    assert message in r.json()["detail"]
    assert PlanVersion.objects.filter(plan=plan_a).count() == 1


def test_duplicate_names_refused(client, plan_a, surgeon_a):
    client.force_login(surgeon_a)
    r = client.post(
        reverse("planning-api:plan-versions", args=[plan_a.pk]),
        {"trajectories": [traj_payload(), traj_payload()]},
        content_type="application/json",
    )
    assert r.status_code == 400 and "two trajectories are named" in r.json()["detail"]


def test_exports_json_png_pdf(client, plan_a, surgeon_a):
    services.save_version(plan_a, surgeon_a, [traj_payload()], "")
    client.force_login(surgeon_a)
    r = client.get(reverse("planning:export-json", args=[plan_a.pk]))
    assert r.status_code == 200
    data = json.loads(r.content)
    assert data["version"]["number"] == 2
    assert data["version"]["snapshot"]["trajectories"][0]["name"] == "S1"
    r = client.get(reverse("planning:report-png", args=[plan_a.pk]) + "?version=2")
    assert r.status_code == 200 and r.content[:8] == b"\x89PNG\r\n\x1a\n"
    import cv2

    page = cv2.imdecode(np.frombuffer(r.content, np.uint8), cv2.IMREAD_COLOR)
    assert page.shape == (1754, 1240, 3)
    # the trajectory colour (#ff8800, BGR 0,136,255) is drawn on the page
    assert np.any(np.all(np.abs(page.astype(int) - [0, 136, 255]) < 10, axis=2))
    r = client.get(reverse("planning:report-pdf", args=[plan_a.pk]))
    assert r.status_code == 200 and r.content[:5] == b"%PDF-"
    r = client.get(reverse("planning:export-json", args=[plan_a.pk]) + "?version=99")
    assert r.status_code == 404


def test_scene_json_has_frusta(client, plan_a, surgeon_a):
    client.force_login(surgeon_a)
    r = client.get(reverse("planning:scene", args=[plan_a.pk]))
    assert r.status_code == 200
    names = [t["name"] for t in r.json()["traces"]]
    assert "view 1 C-arm" in names and "view 2 C-arm" in names


def test_bone_mesh_from_synthetic_ct():
    from planning.engine.scene import bone_mesh

    vol = np.full((20, 24, 28), -1000.0, np.float32)
    vol[5:15, 6:18, 7:21] = 1000.0
    affine = np.diag([2.0, 2.0, 3.0, 1.0])
    affine[:3, 3] = [-10, 5, 100]
    trace = bone_mesh(vol, affine, threshold_hu=250)
    x, z = np.array(trace["x"]), np.array(trace["z"])
    # the box spans i = 7..20 -> x = 4..30 mm and k = 5..14 -> z = 115..142 (iso-surface half a voxel out)
    assert 3.0 <= x.min() <= 5.0 and 29.0 <= x.max() <= 32.0
    assert 113.0 <= z.min() <= 116.5 and 141.0 <= z.max() <= 144.5
    assert bone_mesh(np.zeros((5, 5, 5)), np.eye(4)) is None


def _profile(carm, K, width, height, status="active", version=1):
    from django.core.files.base import ContentFile

    from webapp.calibration.models import CalibrationProfile

    p = CalibrationProfile(
        carm=carm, version=version, status=status, primary_angle_deg=0, secondary_angle_deg=0
    )
    p.data = {
        "K": K,
        "width": width,
        "height": height,
        "pixel_spacing_mm": [1.0, 1.0],
        "source_mm": [0, 0, -1000.0],
    }
    p.image_file.save("phantom.png", ContentFile(b"x"), save=False)
    p.save()
    return p


def test_intrinsics_from_active_calibration_profile(two_views, carm):
    K = [[1010.0, 0, 150.0], [0, 1010.0, 170.0], [0, 0, 1]]
    _profile(carm, K, helpers.SIZE, helpers.SIZE, status="draft")
    geo = services.plan_geometry(*two_views)
    assert "image header" in geo.views[0].source["K"]  # a draft profile is not used
    _profile(carm, K, helpers.SIZE, helpers.SIZE, version=2)
    geo = services.plan_geometry(*two_views)
    assert geo.views[0].source["K"] == f"calibration profile {carm.name} v2"
    np.testing.assert_allclose(geo.views[0].K, K)
    assert not any("lacks a calibration" in w for w in geo.warnings)


def test_profile_of_other_size_is_scaled(two_views, carm):
    K = [[2000.0, 0, 319.5], [0, 2000.0, 319.5], [0, 0, 1]]
    _profile(carm, K, 2 * helpers.SIZE, 2 * helpers.SIZE)
    geo = services.plan_geometry(*two_views)
    np.testing.assert_allclose(geo.views[0].K[0, 0], 1000.0)
    np.testing.assert_allclose(geo.views[0].K[0, 2], (319.5 + 0.5) / 2 - 0.5)


def test_undewarped_image_intensifier_warned(media, patient_a):
    from webapp.records.models import CArm

    ii = CArm.objects.create(name="II", detector_type=CArm.DetectorType.IMAGE_INTENSIFIER)
    x1 = helpers.make_xray(patient_a, ii, 0.0)
    x2 = helpers.make_xray(patient_a, ii, 90.0)
    geo = services.plan_geometry(x1, x2)
    assert any("not dewarped" in w for w in geo.warnings)


def test_dicom_monochrome1_view_is_read_and_inverted(media, patient_a, carm):
    """A real CR radiograph (MONOCHROME1, JPEG 2000) is served as an 8-bit PNG view."""
    import cv2
    from django.core.files.base import ContentFile

    from tests.conftest import shared_path
    from webapp.records.models import XrayImage

    path = shared_path("dicom", "pydicom_data", "RG3_J2KR.dcm")
    x = XrayImage(
        patient=patient_a,
        carm=carm,
        file_format="dicom",
        rows=1760,
        cols=1760,
        photometric_interpretation="MONOCHROME1",
        distance_source_to_detector_mm=1000,
        pixel_spacing_x_mm=0.2,
        pixel_spacing_y_mm=0.2,
        primary_angle_deg=0,
    )
    x.original_file.save("cr.dcm", ContentFile(path.read_bytes()), save=False)
    x.save()
    from webapp.xray_view import read_view

    view = read_view(x)
    assert view.pixels.shape == (1760, 1760) and view.photometric == "MONOCHROME1"
    png = cv2.imdecode(np.frombuffer(services.xray_png(x), np.uint8), cv2.IMREAD_UNCHANGED)
    assert png.shape == (1760, 1760) and png.dtype == np.uint8
    import pydicom

    stored = pydicom.dcmread(path).pixel_array.astype(float)
    # MONOCHROME1: high stored values are dark on display
    corr = np.corrcoef(stored[::16, ::16].ravel(), png[::16, ::16].astype(float).ravel())[0, 1]
    assert corr < -0.9
