"""Admin pages of patient records are scoped like the site: a staff user in no care team,
or in another one, sees no other team's registrations, studies or X-rays there, foreign-key
choices are limited the same way, and stored files are never linked raw."""

from __future__ import annotations

import pytest
from django.urls import reverse

from tests.core.factories import isolated_media, make_xray  # noqa: F401
from tests.review.helpers import finished_registration, tiny_study


@pytest.fixture
def staff_b(make_user, team_b):
    user = make_user("staff_b", "Surgeon", team=team_b)
    user.is_staff = True
    user.save()
    from django.contrib.auth.models import Permission

    user.user_permissions.add(*Permission.objects.filter(
        content_type__app_label__in=("xray_registration", "records"), codename__startswith="view_"
    ))
    user.user_permissions.add(*Permission.objects.filter(codename="change_registration"))
    return user


def test_staff_of_another_team_sees_none_of_team_a(client, staff_b, patient_a):
    study = tiny_study(patient_a)
    reg = finished_registration(make_xray(patient_a), study)
    client.force_login(staff_b)
    for name in ("xray_registration_registration", "xray_registration_registrationmodel"):
        r = client.get(reverse(f"admin:{name}_changelist"))
        assert r.status_code == 200
        assert patient_a.mrn not in r.content.decode()
    assert client.get(reverse("admin:xray_registration_registration_change", args=[reg.pk])).status_code in (302, 404)
    r = client.get(reverse("admin:records_ctstudy_changelist"))
    assert f"CT of {patient_a.mrn}" not in r.content.decode()


def test_superuser_sees_them_without_raw_file_links(client, make_user, patient_a):
    admin_user = make_user("root", superuser=True)
    xray = make_xray(patient_a)
    client.force_login(admin_user)
    page = client.get(reverse("admin:records_xrayimage_change", args=[xray.pk])).content.decode().lower()
    assert "stored files" in page and "original file" in page
    assert xray.original_file.url not in page
