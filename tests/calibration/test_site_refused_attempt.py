"""A refused calibration keeps what it saw: the profile page shows the reason, what to try,
how many beads were detected and the phantom image with the detections circled; the job
page shows the reason too."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from django.core.files.base import ContentFile
from django.urls import reverse

from calibration.refused_attempt import BLOB_BGR, CODED_BGR
from tests.calibration.site_helpers import SPACING_MM, phantom_png
from tests.jobs.conftest import wait_for


def _refused_profile(carm, phantom, png: bytes, user, spacing=SPACING_MM):
    """Run a calibration on ``png`` as the job does and keep its refusal on the profile."""
    from webapp.calibration.models import CalibrationProfile
    from webapp.calibration.services import CalibrationRefused, record_refusal, run_calibration

    version = CalibrationProfile.objects.filter(carm=carm).count() + 1
    profile = CalibrationProfile.objects.create(carm=carm, version=version, phantom=phantom, calibrated_by=user)
    profile.image_file.save("phantom.png", ContentFile(png))
    with pytest.raises(CalibrationRefused) as info:
        run_calibration(profile, spacing)
    record_refusal(profile, info.value)
    profile.refresh_from_db()
    return profile


def _coloured(picture: np.ndarray, bgr: tuple[int, int, int]) -> np.ndarray:
    """(H, W) bool: pixels of about the colour ``bgr`` (anti-aliased edges included)."""
    return np.all(np.abs(picture.astype(int) - bgr) <= 40, axis=2)


def _circled(picture: np.ndarray, u: float, v: float, reach: int, bgr) -> bool:
    """True when a pixel of the colour ``bgr`` lies within ``reach`` pixels of (u, v)."""
    h, w = picture.shape[:2]
    u0, v0 = int(round(u)), int(round(v))
    box = picture[max(0, v0 - reach) : min(h, v0 + reach + 1), max(0, u0 - reach) : min(w, u0 + reach + 1)]
    return bool(_coloured(box, bgr).any())


def test_too_few_beads_shows_reason_advice_and_detections(client, carm, clipon, cal_admin, make_user):
    from webapp.calibration.models import CalibrationProfile

    profile = _refused_profile(carm, clipon, phantom_png(seed=2, hide_fraction=0.9), cal_admin)
    assert profile.status == CalibrationProfile.Status.FAILED and profile.data == {}
    attempt = profile.attempt
    n_beads = len(clipon.definition["beads"])
    assert attempt["kind"] == "beads" and (attempt["width"], attempt["height"]) == (512, 512)
    assert 0 < attempt["n_blobs"] < 0.3 * n_beads
    assert len(attempt["blobs"]) == attempt["n_blobs"] and attempt["advice"]

    client.force_login(make_user("surgeon-viewer", "Surgeon"))  # anyone signed in may look
    page = client.get(reverse("calibration:profile-detail", args=[profile.pk])).content.decode()
    assert "Calibration refused: " + profile.message.replace("'", "&#x27;") in page
    assert 'id="attempt-advice"' in page and attempt["advice"].split(":")[0] in page
    assert f'{attempt["n_blobs"]} beads detected' in page and 'id="attempt-image"' in page

    response = client.get(reverse("calibration:profile-attempt-image", args=[profile.pk]))
    assert response.status_code == 200 and response["Content-Type"] == "image/png"
    picture = cv2.imdecode(np.frombuffer(response.content, np.uint8), cv2.IMREAD_COLOR)
    assert picture.shape == (512, 512, 3)
    radius = max(4, round(512 / 110))
    for u, v, coded in attempt["blobs"]:
        assert _circled(picture, u, v, radius + 3, CODED_BGR if coded else BLOB_BGR), (u, v, coded)
    # away from the detections the picture is the grey phantom image, with no circles
    far_from_blobs = np.full((512, 512), 255, np.uint8)
    for u, v, _coded in attempt["blobs"]:
        cv2.circle(far_from_blobs, (round(u), round(v)), radius + 5, 0, -1)
    marks = _coloured(picture, BLOB_BGR) | _coloured(picture, CODED_BGR)
    assert marks.any() and not np.any(marks & (far_from_blobs > 0))


def test_refused_plate_shows_the_markers_it_found(client, carm, cal_admin):
    """A plate frame calibrated with the wrong plate (another pitch): the markers found
    are kept and circled, the advice names the plate and the pixel spacing."""
    from tests.calibration.plate_helpers import SP, plate, small_frame
    from webapp.calibration.services import create_phantom

    imaged = plate("square", "hole", pitch=3.0, diameter=1.2)
    sim = small_frame(imaged, seed=4)
    ok, png = cv2.imencode(".png", np.asarray(sim.image).astype(np.uint16))
    assert ok
    chosen = create_phantom("Wrong pitch plate", plate("square", "hole", pitch=4.5, diameter=1.2).to_dict(), cal_admin)
    profile = _refused_profile(carm, chosen, png.tobytes(), cal_admin, spacing=(SP, SP))
    attempt = profile.attempt
    assert "wrong plate" in profile.message and attempt["kind"] == "plate markers"
    assert "pitch" in attempt["advice"] and attempt["n_coded"] == 0
    # the markers found are real holes of the imaged plate
    found = np.array([blob[:2] for blob in attempt["blobs"]])
    assert len(found) > 100
    distance = np.linalg.norm(found[:, None] - sim.true_px[None], axis=2).min(axis=1)
    assert np.median(distance) < 1.0
    client.force_login(cal_admin)
    page = client.get(reverse("calibration:profile-detail", args=[profile.pk])).content.decode()
    assert f'{attempt["n_blobs"]} plate markers detected' in page and 'id="attempt-image"' in page
    picture = client.get(reverse("calibration:profile-attempt-image", args=[profile.pk]))
    assert picture.status_code == 200 and picture["Content-Type"] == "image/png"


def test_blank_frame_says_nothing_was_detected(client, carm, clipon, cal_admin):
    profile = _refused_profile(carm, clipon, phantom_png(blank=True), cal_admin)
    assert profile.attempt["n_blobs"] == 0 and "blank" in profile.attempt["detection_error"]
    assert "exposed" in profile.attempt["advice"]
    client.force_login(cal_admin)
    page = client.get(reverse("calibration:profile-detail", args=[profile.pk])).content.decode()
    assert 'id="attempt-detection-error"' in page and "Nothing could be detected" in page
    image = client.get(reverse("calibration:profile-attempt-image", args=[profile.pk]))
    assert image.status_code == 200 and image["Content-Type"] == "image/png"


def test_refusal_before_detection_shows_advice_without_a_picture(client, carm, clipon, cal_admin):
    from webapp.calibration.models import CalibrationProfile
    from webapp.calibration.services import CalibrationRefused, record_refusal

    profile = CalibrationProfile.objects.create(carm=carm, version=1, phantom=clipon, calibrated_by=cal_admin)
    profile.image_file.save("phantom.png", ContentFile(phantom_png(seed=0)))
    record_refusal(profile, CalibrationRefused("the phantom image has no pixel spacing and none was given"))
    client.force_login(cal_admin)
    page = client.get(reverse("calibration:profile-detail", args=[profile.pk])).content.decode()
    assert "pixel spacing" in page and 'id="attempt-advice"' in page and "Enter the detector pixel spacing" in page
    assert 'id="attempt-image"' not in page and 'id="attempt-no-image"' in page
    ok = client.get(reverse("calibration:profile-detail", args=[profile.pk]))
    assert ok.status_code == 200


def test_a_computed_profile_has_no_refusal_picture(client, carm, clipon, cal_admin):
    from webapp.calibration.models import CalibrationProfile

    profile = CalibrationProfile.objects.create(carm=carm, version=1, phantom=clipon, status="draft")
    client.force_login(cal_admin)
    assert client.get(reverse("calibration:profile-attempt-image", args=[profile.pk])).status_code == 404
    assert CalibrationProfile.objects.get(pk=profile.pk).attempt == {}


@pytest.mark.worker
def test_refused_job_keeps_the_attempt_for_the_pages(celery_worker, client, carm, clipon, cal_admin):
    from webapp.calibration.models import CalibrationProfile
    from webapp.calibration.services import start_calibration
    from webapp.jobs.models import Job

    profile = start_calibration(carm, clipon, phantom_png(seed=2, hide_fraction=0.9), user=cal_admin)
    job = Job.objects.get(kind="calibrate_carm", params__profile_id=profile.pk)

    def finished():
        job.refresh_from_db()
        return job.is_finished

    wait_for(finished, timeout=120, what="the calibration job")
    profile.refresh_from_db()
    assert job.status == Job.Status.FAILED and profile.status == CalibrationProfile.Status.FAILED
    assert profile.message and profile.message in job.error
    assert profile.attempt["n_blobs"] > 0 and profile.attempt["advice"]
    client.force_login(cal_admin)
    job_page = client.get(reverse("jobs:job-detail", args=[job.pk])).content.decode()
    assert "calibration refused" in job_page
    page = client.get(reverse("calibration:profile-detail", args=[profile.pk])).content.decode()
    assert 'id="attempt-image"' in page and 'id="attempt-advice"' in page


@pytest.mark.parametrize(
    "message, words",
    [
        ("image is blank (no contrast)", "was exposed"),
        ("the exposed field of view is too small to hold a phantom", "open the collimator"),
        ("the phantom image has no pixel spacing and none was given", "Enter the detector pixel spacing"),
        ("no regular bead grid found near the expected spacing: wrong phantom or pixel spacing", "Check the detector pixel spacing"),
        ("a grid plate gives no source distance, and neither the image header nor C-arm X has one: "
         "enter the C-arm's source-to-detector distance first", "source-to-detector distance on its page"),
        ("only 3 far-layer (plane 1) beads found; at least 6 are needed for the source position", "far layer is in the beam"),
        ("the far layer does not agree with one source (3 of 20 far beads fit)", "layer gap"),
        ("the phantom orientation is ambiguous: too few coded (large) beads are visible", "Rotate the phantom"),
        ("only 4 of 60 beads detected in the upper-left quadrant: too few to fit the distortion", "missing from part"),
        ("only 40 of 300 beads found: too many hidden, or the wrong phantom", "hidden or outside the field"),
        ("marker spacing in the image is 4.00 mm but the plate has 3.00 mm: wrong plate or wrong pixel spacing", "chosen plate (its pitch"),
        ("only 5 marker-like blobs found: not an image of this plate", "Few beads or markers"),
        ("the bead pattern does not match this phantom (40 grid beads, 6 large; best code agreement 50%)", "actually imaged"),
        ("distortion fit failed: singular matrix", "lies flat against the detector"),
    ],
)  # fmt: skip
def test_advice_follows_the_words_of_the_refusal(message, words):
    from calibration.refused_attempt import advice_for

    assert words in advice_for(message)
