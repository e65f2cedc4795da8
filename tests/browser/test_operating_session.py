"""The intra-operative session in a real browser: a shot sent by C-STORE to the listener
appears on the open session page within seconds, says its device is uncalibrated, gets its
overlay once the registration job (real Celery worker, training-free) ends, and two pinned
shots open their two-view plan."""

from __future__ import annotations

import time

import pytest

from tests.dicomnet.conftest import make_node, node_settings  # noqa: F401
from tests.jobs.conftest import (  # noqa: F401 - fixtures
    broker_ready,
    celery_worker,
    fast_heartbeat,
    purged_queues,
)

pytestmark = [pytest.mark.browser, pytest.mark.worker, pytest.mark.timeout(900)]


def _scene(patient, surgeon):
    """The patient's tiny bone CT, an open session and one earlier, registered shot."""
    from tests.review.helpers import finished_registration, simulated_xray
    from webapp.operating.bench_shots import bench_volume
    from webapp.operating.models import SessionShot
    from webapp.operating.services import open_session
    from webapp.records.models import CTStudy
    from webapp.records.volume_store import save_volume

    study = CTStudy(patient=patient, description="tiny bone CT", status=CTStudy.Status.READY)
    save_volume(study, bench_volume())
    study.save()
    session, _ = open_session(patient=patient, operation="SI screw, left", user=surgeon)
    earlier = simulated_xray(patient, primary=90.0, secondary=0.0, description="lateral")
    SessionShot.objects.create(
        session=session, xray=earlier, registration=finished_registration(earlier, study)
    )
    return session


def test_a_c_store_shot_appears_and_gets_its_overlay(
    node_settings, celery_worker, make_node, login_page, page_url, surgeon_a, patient_a  # noqa: F811
):
    from registration.engine.drr import DrrRenderer
    from webapp.operating.bench_shots import bench_volume, c_store, shot_dataset, shot_pixels
    from webapp.operating.models import SessionShot
    from webapp.planning.models import Plan

    session = _scene(patient_a, surgeon_a)
    node = make_node()
    page = login_page(surgeon_a)
    page.goto(page_url("operating:session", session.pk))
    page.wait_for_selector("article.shot.state-registered")  # the earlier shot
    assert page.locator("article.shot").count() == 1

    renderer = DrrRenderer(bench_volume(), bone_threshold_hu=200.0)
    ds = shot_dataset(shot_pixels(renderer, 10.0, 5.0), mrn=patient_a.mrn, primary_deg=10.0,
                      secondary_deg=5.0)
    started = time.perf_counter()
    assert c_store(node.port, ds) == (0, "")
    shot = SessionShot.objects.exclude(registration__status="ok").get(session=session)
    tile = f"#shot-{shot.pk}"
    page.wait_for_selector(tile, timeout=10_000)
    appeared_s = time.perf_counter() - started
    assert appeared_s < 5.0, appeared_s  # polled every second
    assert "uncalibrated device" in page.text_content(f"{tile} .shot-note")
    assert page.get_attribute(f"{tile} img", "data-kind") == "preview"

    page.wait_for_function(
        f"""() => {{
            const img = document.querySelector('{tile} img');
            return img.dataset.kind === 'overlay' && img.complete && img.naturalWidth > 0;
        }}""",
        timeout=600_000,
    )
    assert page.get_attribute(tile, "data-state") == "registered"
    assert page.get_attribute(f"{tile} img", "src").endswith("/overlay.png")
    assert page.get_attribute(f"{tile} .shot-link", "href").startswith("/registration/")

    assert page.console_errors == []

    page.check(f"{tile} input[name=shot]")
    page.check("article.shot.state-registered:not(" + tile + ") input[name=shot]")
    page.click("#pin-views")
    page.wait_for_url("**/planning/**")
    plan = Plan.objects.get(patient=patient_a)
    assert {plan.xray1_id, plan.xray2_id} == {
        s.xray_id for s in SessionShot.objects.filter(session=session)
    }
