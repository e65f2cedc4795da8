"""A plan whose two views are registered to the CT: the trajectory is stored in CT
coordinates and drawn in the CT viewer (axial/coronal/sagittal centred on it), and the
3D scene carries the bone surface."""

from __future__ import annotations

import numpy as np
import pytest

from tests.browser import volumes
from tests.planning import helpers

pytestmark = pytest.mark.browser


@pytest.fixture
def registered_plan(settings, tmp_path, transactional_db, patient_a, surgeon_a):
    from geometry.carm import carm_pose
    from webapp.planning import services
    from webapp.xray_registration.models import Registration

    settings.MEDIA_ROOT = str(tmp_path / "media")
    affine = volumes.affine_for()
    study = volumes.save_study(patient_a, volumes.phantom_hu(), affine)
    centre = affine[:3, :3] @ (np.array([56, 48, 24]) - 1) / 2 + affine[:3, 3]
    carm = helpers.make_carm()
    poses = {}
    xrays = []
    for lao in (0.0, 90.0):
        xray = helpers.make_xray(patient_a, carm, lao)
        poses[lao] = carm_pose(lao, 0.0, helpers.SID, centre)
        Registration.objects.create(
            xray=xray, study=study, status="ok", T_cam_from_world=poses[lao].tolist()
        )
        xrays.append(xray)
    plan = services.create_plan(patient_a, surgeon_a, "Registered plan", *xrays)
    entry, target = centre + [-8.0, -10.0, -12.0], centre + [6.0, 8.0, 14.0]
    picks = helpers.picks_for(entry, target, poses[0.0], poses[90.0])
    version = services.save_version(
        plan, surgeon_a, [{"name": "S1", "colour": "#ff00ff", "diameter_mm": 5, "picks": picks}], ""
    )
    return plan, version, entry, target, study


def test_registered_plan_in_ct_viewer(
    registered_plan, login_page, page_url, surgeon_a, built_frontend
):
    plan, version, entry, target, study = registered_plan
    t = version.snapshot["trajectories"][0]
    assert version.snapshot["world_frame"] == "ct"
    np.testing.assert_allclose(t["ct"]["entry_lps"], entry, atol=1e-6)
    np.testing.assert_allclose(t["ct"]["target_lps"], target, atol=1e-6)
    assert t["ct"]["study_id"] == study.pk

    page = login_page(surgeon_a)
    page.goto(page_url("planning:plan", plan.pk))
    page.wait_for_selector("body[data-planning-ready='1']")
    assert "CT (LPS)" in page.inner_text("[data-testid=world-frame]")
    assert "registration #" in page.inner_text("[data-testid=view1-source]")
    # anatomical angles are shown once registered
    assert "incl" in page.inner_text("#readouts")
    page.wait_for_function(
        "() => window.orthofuseViewer && (window.orthofuseViewer.ready || window.orthofuseViewer.error)"
    )
    assert page.evaluate("() => window.orthofuseViewer.error") is None
    page.wait_for_function("() => window.PlanningCT && window.PlanningCT.drawn >= 3")
    mid = (entry + target) / 2
    for name in ("axial", "coronal", "sagittal"):
        focal = page.evaluate(
            f"() => window.orthofuseViewer.viewer.viewport('{name}').getCamera().focalPoint"
        )
        np.testing.assert_allclose(focal, mid, atol=1e-3)
    # the overlay of the axial view holds magenta pixels of the trajectory
    magenta = page.evaluate(
        """() => {
        const c = document.querySelector('.pl-ct-overlay[data-view=axial]');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0;
        for (let p = 0; p < d.length; p += 4) if (d[p] > 200 && d[p + 1] < 60 && d[p + 2] > 200 && d[p + 3] > 200) n++;
        return n;
    }"""
    )
    assert magenta > 20
    scene = page.evaluate(f"() => fetch('/planning/{plan.pk}/scene.json').then(r => r.json())")
    assert any(tr["name"].startswith("bone") for tr in scene["traces"])
