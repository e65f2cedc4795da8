"""The audit trail: page views, downloads, exports, uploads and logins are recorded with user,
patient, IP and time; rows are append-only."""

from __future__ import annotations

import pytest
from django.urls import reverse

from tests.core.factories import make_study, make_xray
from webapp.core.models import AuditEvent

A = AuditEvent.Action


def _events(**filters):
    return list(AuditEvent.objects.filter(**filters).order_by("id"))


@pytest.mark.django_db
def test_patient_page_view_is_recorded_with_user_patient_and_ip(client, surgeon_a, patient_a):
    client.force_login(surgeon_a)
    before = AuditEvent.objects.count()
    url = reverse("records:patient-detail", kwargs={"pk": patient_a.pk})
    assert client.get(url, REMOTE_ADDR="10.1.2.3").status_code == 200
    [event] = _events(id__gt=0, action=A.VIEW, patient_mrn=patient_a.mrn)
    assert AuditEvent.objects.count() == before + 1
    assert event.user == surgeon_a and event.username == "surgeon_a"
    assert event.patient_id_ref == patient_a.pk
    assert event.ip_address == "10.1.2.3"
    assert event.path == url
    assert event.created_at is not None


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("name", "kind", "action"),
    [
        ("records:study-detail", "study", A.VIEW),
        ("records:study-download", "study", A.EXPORT),
        ("records:xray-detail", "xray", A.VIEW),
        ("records:xray-preview", "xray", A.VIEW),
        ("records:xray-download", "xray", A.DOWNLOAD),
    ],
)
def test_record_pages_and_files_are_audited(client, surgeon_a, patient_a, name, kind, action):
    obj = make_study(patient_a) if kind == "study" else make_xray(patient_a)
    client.force_login(surgeon_a)
    response = client.get(reverse(name, kwargs={"pk": obj.pk}))
    assert response.status_code == 200
    events = _events(action=action, object_type=type(obj).__name__, object_id=str(obj.pk))
    assert len(events) == 1
    assert events[0].patient_mrn == patient_a.mrn


@pytest.mark.django_db
def test_refused_access_records_no_view_of_other_patient(client, surgeon_a, patient_b):
    client.force_login(surgeon_a)
    assert (
        client.get(reverse("records:patient-detail", kwargs={"pk": patient_b.pk})).status_code
        == 404
    )
    assert not AuditEvent.objects.filter(patient_mrn=patient_b.mrn).exists()


@pytest.mark.django_db
def test_api_detail_and_create_are_audited(client, surgeon_a, patient_a, team_a):
    client.force_login(surgeon_a)
    assert client.get(f"/api/patients/{patient_a.pk}/").status_code == 200
    assert _events(action=A.VIEW, patient_mrn=patient_a.mrn)
    response = client.post(
        "/api/patients/", {"mrn": "A-0099", "family_name": "New"}, content_type="application/json"
    )
    assert response.status_code == 201, response.content
    [created] = _events(action=A.CREATE, patient_mrn="A-0099")
    assert created.user == surgeon_a


@pytest.mark.django_db
def test_login_and_failed_login_are_recorded(client, surgeon_a):
    response = client.post(reverse("login"), {"username": "surgeon_a", "password": "wrong"})
    assert response.status_code == 200
    [failed] = _events(action=A.LOGIN_FAILED)
    assert failed.username == "surgeon_a" and failed.user is None
    assert "wrong" not in failed.detail
    response = client.post(
        reverse("login"), {"username": "surgeon_a", "password": "pw-surgeon_a-123"}
    )
    assert response.status_code == 302
    [login] = _events(action=A.LOGIN)
    assert login.user == surgeon_a and login.ip_address == "127.0.0.1"


@pytest.mark.django_db
def test_audit_events_are_append_only(surgeon_a):
    event = AuditEvent.objects.create(user=surgeon_a, username="surgeon_a", action=A.VIEW)
    event.detail = "tampered"
    with pytest.raises(PermissionError):
        event.save()
    with pytest.raises(PermissionError):
        event.delete()
    assert AuditEvent.objects.get(pk=event.pk).detail == ""
