"""The admin page that browses the audit trail: read-only, filterable and searchable."""

from __future__ import annotations

import pytest
from django.urls import reverse

from webapp.core.models import AuditEvent

A = AuditEvent.Action
CHANGELIST = "admin:core_auditevent_changelist"


@pytest.fixture
def admin_client_(client, make_user):
    client.force_login(make_user("root", superuser=True))
    return client


@pytest.fixture
def events(surgeon_a, surgeon_b):
    AuditEvent.objects.create(
        user=surgeon_a, username="surgeon_a", action=A.VIEW, patient_mrn="A-0001"
    )
    AuditEvent.objects.create(
        user=surgeon_b, username="surgeon_b", action=A.DOWNLOAD, patient_mrn="B-0001"
    )
    return AuditEvent.objects.order_by("id")


@pytest.mark.django_db
def test_changelist_lists_search_and_filter(admin_client_, events):
    url = reverse(CHANGELIST)
    body = admin_client_.get(url).content.decode()
    assert "A-0001" in body and "B-0001" in body
    body = admin_client_.get(url, {"q": "B-0001"}).content.decode()
    assert "B-0001" in body and "A-0001" not in body
    body = admin_client_.get(url, {"q": "surgeon_a"}).content.decode()
    assert "A-0001" in body and "B-0001" not in body
    body = admin_client_.get(url, {"action__exact": A.DOWNLOAD}).content.decode()
    assert "B-0001" in body and "A-0001" not in body


@pytest.mark.django_db
def test_audit_admin_refuses_add_change_delete(admin_client_, events):
    event = events.get(username="surgeon_a", action=A.VIEW)
    assert admin_client_.get(reverse("admin:core_auditevent_add")).status_code == 403
    change_url = reverse("admin:core_auditevent_change", args=[event.pk])
    assert admin_client_.get(change_url).status_code == 200  # view only
    admin_client_.post(change_url, {"detail": "tampered", "action": A.DELETE})
    assert AuditEvent.objects.get(pk=event.pk).detail == event.detail != "tampered"
    delete_url = reverse("admin:core_auditevent_delete", args=[event.pk])
    assert admin_client_.post(delete_url, {"post": "yes"}).status_code == 403
    assert AuditEvent.objects.filter(pk=event.pk).exists()


@pytest.mark.django_db
def test_non_admin_cannot_browse_audit(client, surgeon_a, events):
    client.force_login(surgeon_a)
    response = client.get(reverse(CHANGELIST))
    assert response.status_code == 302  # to the admin login
    assert b"B-0001" not in response.content


@pytest.mark.django_db
def test_record_admins_render(admin_client_, patient_a):
    for name in (
        "admin:records_patient_changelist",
        "admin:records_careteam_changelist",
        "admin:records_carm_changelist",
        "admin:records_ctstudy_changelist",
        "admin:records_xrayimage_changelist",
    ):
        assert admin_client_.get(reverse(name)).status_code == 200, name
    body = admin_client_.get(reverse("admin:records_patient_change", args=[patient_a.pk])).content
    assert b"Trauma A" in body
