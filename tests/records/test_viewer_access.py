"""Another team's CT study is invisible to the viewer: 404 everywhere, nothing audited."""

from __future__ import annotations

import pytest
from django.urls import reverse

from tests.browser.volumes import affine_for, phantom_hu, save_study
from webapp.core.models import AuditEvent

pytestmark = pytest.mark.django_db

VIEWER_ROUTES = ("records:study-volume-meta", "records:study-volume-data")


@pytest.fixture
def study_a(patient_a):
    return save_study(patient_a, phantom_hu((4, 6, 8)), affine_for())


def test_surgeon_of_another_team_gets_404(client, surgeon_b, study_a):
    client.force_login(surgeon_b)
    before = AuditEvent.objects.filter(patient_mrn=study_a.patient.mrn).count()
    for name in ("records:study-detail", *VIEWER_ROUTES):
        response = client.get(reverse(name, args=[study_a.pk]))
        assert response.status_code == 404, name
        assert study_a.patient.mrn.encode() not in response.content
    assert AuditEvent.objects.filter(patient_mrn=study_a.patient.mrn).count() == before


def test_surgeon_of_the_care_team_is_served(client, surgeon_a, study_a):
    client.force_login(surgeon_a)
    page = client.get(reverse("records:study-detail", args=[study_a.pk]))
    assert page.status_code == 200
    html = page.content.decode()
    assert "data-ct-viewer" in html
    assert reverse("records:study-volume-meta", args=[study_a.pk]) in html
    assert reverse("records:study-volume-data", args=[study_a.pk]) in html
    assert "dist/ct_viewer.js" in html
    for name in VIEWER_ROUTES:
        assert client.get(reverse(name, args=[study_a.pk])).status_code == 200, name


def test_site_admin_is_served(client, make_user, study_a):
    admin = make_user("site_admin", superuser=True)
    client.force_login(admin)
    for name in VIEWER_ROUTES:
        assert client.get(reverse(name, args=[study_a.pk])).status_code == 200, name


def test_anonymous_user_is_sent_to_login(client, study_a):
    for name in VIEWER_ROUTES:
        response = client.get(reverse(name, args=[study_a.pk]))
        assert response.status_code == 302, name
        assert response["Location"].startswith(reverse("login"))


def test_unknown_study_is_404(client, surgeon_a, study_a):
    client.force_login(surgeon_a)
    for name in VIEWER_ROUTES:
        assert client.get(reverse(name, args=[study_a.pk + 1000])).status_code == 404, name
