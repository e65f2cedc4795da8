"""`load_demo` builds the demo once and reuses it on the next run; its Jobs page shows a
2 MB decompression bomb refused by the real CT import job (once, not again on the next run)."""

from __future__ import annotations

import re

import pytest
from django.core.management import call_command
from django.urls import reverse

BOMB_LINE = re.compile(
    r"^a 2 MB bomb declaring 10 GiB was refused \(peak (\d+\.\d) MiB\): CT import job #\d+ on "
    r"the Jobs page$",
    re.M,
)
BOMB_ERROR = (
    r"'bomb\.nii\.gz': its 1073741824 voxels need about 10\.0 GiB of memory to import, more than "
    r"the limit of \d+\.\d GiB"
)


@pytest.mark.slow
def test_load_demo_is_complete_and_idempotent(db, capsys, settings):
    from webapp.calibration.models import CalibrationProfile
    from webapp.planning.models import Plan
    from webapp.records.models import CArm, CTStudy, Patient, XrayImage

    settings.DEBUG = False  # a production site loads it only when forced
    call_command("load_demo", "--force")
    first = capsys.readouterr().out
    assert "user surgeon" in first and "password" in first
    counts = (Patient.objects.count(), CTStudy.objects.count(), XrayImage.objects.count(),
              CArm.objects.count(), CalibrationProfile.objects.count())
    settings.DEBUG = True  # development needs no --force
    call_command("load_demo")
    second = capsys.readouterr().out
    assert (Patient.objects.count(), CTStudy.objects.count(), XrayImage.objects.count(),
            CArm.objects.count(), CalibrationProfile.objects.count()) == counts
    assert counts == (1, 1, 3, 1, 2)
    study = CTStudy.objects.get()
    assert study.status == "ready" and study.shape == [112, 101, 122]
    assert CalibrationProfile.objects.filter(status="active").count() == 2
    assert Plan.objects.count() == 1
    from webapp.xray_registration.models import RegistrationModel

    model = RegistrationModel.objects.get()  # queued once, not again on the second run
    assert model.status == "training" and model.preset == "quick" and model.job.kind == "train_registration_model"
    for xray in XrayImage.objects.all():
        assert xray.dewarped_file, xray.description
        assert xray.dewarp_info["dewarped"]
        if xray.description.startswith("Oblique"):  # 22° from the nearest calibration
            assert "22° from this X-ray's angle" in xray.dewarp_info["warning"]
        else:
            assert xray.dewarp_info["warning"] == ""
        assert len(xray.ground_truth["T_cam_from_world"]) == 4
    _assert_the_bomb_was_refused_once(first, second)


def _assert_the_bomb_was_refused_once(first: str, second: str) -> None:
    from django.contrib.auth.models import User
    from django.test import Client

    from tests.records.jobflow import staged_tokens
    from webapp.jobs.models import Job
    from webapp.records.models import CTStudy

    [line] = BOMB_LINE.findall(first)
    print(f"\nload_demo: the 2 MB bomb's import job peaked at {line} MiB (tracemalloc)")
    assert 0 < float(line) < 500  # MiB: the refusal allocates almost nothing
    assert not BOMB_LINE.search(second) and "bomb" not in second
    job = Job.objects.get(kind="import_ct", params__demo="bomb")  # one, not one per run
    assert job.status == "failed" and job.patient.mrn == "DEMO-0001"
    assert job.created_by.username == "surgeon" and job.label == "CT import"
    assert re.fullmatch(BOMB_ERROR, job.error), job.error
    assert CTStudy.objects.count() == 1 and staged_tokens() == []  # nothing stored or left
    client = Client()
    client.force_login(User.objects.get(username="surgeon"))
    page = client.get(reverse("jobs:job-list")).content.decode()
    assert f"#{job.pk} CT import" in page
    detail = client.get(reverse("jobs:job-detail", kwargs={"pk": job.pk})).content.decode()
    assert "need about 10.0 GiB of memory to import" in detail
