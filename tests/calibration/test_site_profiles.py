"""Profile review (activate / reject), choice of profile for an X-ray, dewarping, and
who may change calibrations."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from django.core.files.base import ContentFile
from django.urls import reverse

from tests.calibration.site_helpers import phantom_png


@pytest.fixture
def computed_profile(carm, clipon, cal_admin):
    """A draft profile computed synchronously (no worker) from a simulated image."""
    from webapp.calibration.models import CalibrationProfile
    from webapp.calibration.services import run_calibration

    def make(primary: float = 0.0, secondary: float = 0.0, seed: int = 4) -> CalibrationProfile:
        version = CalibrationProfile.objects.filter(carm=carm).count() + 1
        profile = CalibrationProfile.objects.create(
            carm=carm, version=version, phantom=clipon, calibrated_by=cal_admin,
            primary_angle_deg=primary, secondary_angle_deg=secondary,
        )
        profile.image_file.save("phantom.png", ContentFile(phantom_png(seed=seed)))
        return run_calibration(profile, (0.5, 0.5))

    return make


def test_activation_retires_the_profile_at_the_same_angle_only(computed_profile, cal_admin):
    from webapp.calibration.models import CalibrationProfile as P
    from webapp.calibration.services import activate_profile

    first = computed_profile(0, 0)
    lateral = computed_profile(90, 0)
    activate_profile(first, cal_admin)
    activate_profile(lateral, cal_admin)
    second = computed_profile(0.5, 0)
    activate_profile(second, cal_admin)
    first.refresh_from_db()
    lateral.refresh_from_db()
    assert (first.status, lateral.status, second.status) == (P.Status.RETIRED, P.Status.ACTIVE, P.Status.ACTIVE)
    assert second.reviewed_by == cal_admin


def test_nearest_profile_is_chosen_with_a_warning_when_far(carm, computed_profile, cal_admin):
    from webapp.calibration.services import activate_profile, profile_for_angles

    ap, lateral = computed_profile(0, 0), computed_profile(90, 0)
    activate_profile(ap, cal_admin)
    activate_profile(lateral, cal_admin)
    near = profile_for_angles(carm, 85.0, 0.0)
    assert near.profile == lateral and near.angle_distance_deg == pytest.approx(5.0, abs=1e-9)
    assert near.warning == ""
    far = profile_for_angles(carm, 45.0, 20.0)
    assert far.profile in (ap, lateral) and "from this X-ray's angle" in far.warning


def test_dewarp_moves_beads_to_their_ideal_positions(carm, computed_profile, cal_admin, patient_a):
    from calibration.engine.phantom import builtin_phantom
    from simulation.phantom_frames import SimGeometry, simulate_phantom_image
    from webapp.calibration.services import activate_profile, dewarp_xray
    from webapp.records.models import XrayImage

    profile = computed_profile(0, 0, seed=5)
    activate_profile(profile, cal_admin)
    sim = simulate_phantom_image(builtin_phantom("clipon_two_layer"), SimGeometry(spacing=(0.5, 0.5)), rng=8)
    xray = XrayImage(patient=patient_a, carm=carm, file_format="png", rows=512, cols=512,
                     primary_angle_deg=2.0, secondary_angle_deg=0.0)
    ok, buf = cv2.imencode(".png", np.clip(sim.image, 0, 65535).astype(np.uint16))
    xray.original_file.save("x.png", ContentFile(buf.tobytes()), save=False)
    xray.save()
    info = dewarp_xray(xray)
    assert info["dewarped"] and info["profile_id"] == profile.pk and info["warning"] == ""
    with xray.dewarped_file.open("rb") as handle:
        out = cv2.imdecode(np.frombuffer(handle.read(), np.uint8), cv2.IMREAD_UNCHANGED).astype(float)
    # The most distorted visible bead: dark at its ideal pinhole pixel after dewarping,
    # and not there before.
    shift = {
        b: float(np.hypot(*(sim.true_px[b] - sim.true_dewarped_px[b])))
        for b, visible in sim.visible.items()
        if visible and b in sim.true_px
    }
    bead_id = max(shift, key=shift.get)
    assert shift[bead_id] > 3.0
    u, v = np.round(sim.true_dewarped_px[bead_id]).astype(int)

    def darkness(img: np.ndarray) -> float:
        return float(np.median(img[img > 0]) - img[v - 1 : v + 2, u - 1 : u + 2].mean())

    assert darkness(out) > 5 * abs(darkness(sim.image.astype(float))) + 1.0


def test_flat_panel_is_not_dewarped_but_gets_intrinsics(carm, computed_profile, cal_admin, patient_a):
    from webapp.calibration.services import activate_profile, dewarp_xray
    from webapp.records.models import CArm, XrayImage

    profile = computed_profile(0, 0)
    activate_profile(profile, cal_admin)
    carm.detector_type = CArm.DetectorType.FLAT_PANEL
    carm.save()
    xray = XrayImage(patient=patient_a, carm=carm, file_format="png", rows=512, cols=512)
    xray.original_file.save("x.png", ContentFile(phantom_png(seed=0)), save=False)
    xray.save()
    info = dewarp_xray(xray)
    assert info["dewarped"] is False and info["K"] == profile.data["K"]
    assert "flat-panel" in info["note"] and not xray.dewarped_file


def test_surgeons_can_look_but_not_change(client, surgeon_a, computed_profile):
    profile = computed_profile()
    client.force_login(surgeon_a)
    assert client.get(reverse("calibration:profile-list")).status_code == 200
    page = client.get(reverse("calibration:profile-detail", args=[profile.pk]))
    assert page.status_code == 200 and b"Residual RMS" in page.content and b'id="activate"' not in page.content
    assert client.get(reverse("calibration:profile-new")).status_code == 403
    response = client.post(reverse("calibration:profile-review", args=[profile.pk]), {"decision": "activate"})
    assert response.status_code == 403
    profile.refresh_from_db()
    assert profile.status == "draft"


def test_admin_reviews_from_the_qa_page(client, cal_admin, computed_profile):
    profile = computed_profile()
    client.force_login(cal_admin)
    page = client.get(reverse("calibration:profile-detail", args=[profile.pk]))
    assert b'id="activate"' in page.content
    response = client.post(reverse("calibration:profile-review", args=[profile.pk]), {"decision": "reject", "comment": "blurred"})
    assert response.status_code == 302
    profile.refresh_from_db()
    assert profile.status == "rejected" and profile.review_comment == "blurred"
    image = client.get(reverse("calibration:profile-image", args=[profile.pk]) + "?which=dewarped")
    assert image.status_code == 200 and image["Content-Type"] == "image/png"


def test_bad_phantom_definition_is_refused_with_its_reason(client, cal_admin, phantoms):
    from webapp.calibration.models import Phantom

    client.force_login(cal_admin)
    upload = ContentFile(b'{"name": "x", "beads": [{"id": "a", "xyz_mm": [0, 0], "diameter_mm": 2, "plane": 0}]}', name="p.json")
    response = client.post(reverse("calibration:phantom-list"), {"name": "Mine", "definition": upload})
    assert response.status_code == 200 and b"phantom definition refused" in response.content
    assert not Phantom.objects.filter(name="Mine").exists()
