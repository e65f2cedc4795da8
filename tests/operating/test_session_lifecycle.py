"""Opening and closing an intra-operative session: one open session per patient, closing
is final and idempotent, both are audited, and bad requests are refused in words."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, transaction

from tests.core.factories import isolated_media, make_study  # noqa: F401


def test_open_returns_the_open_session_until_it_is_closed(patient_a, surgeon_a):
    from webapp.core.models import AuditEvent
    from webapp.operating.services import close_session, open_session, open_session_for

    first, created = open_session(patient=patient_a, operation="  SI  screw,   left ", user=surgeon_a)
    assert created and first.is_open and first.operation == "SI screw, left"
    assert first.opened_by == surgeon_a and open_session_for(patient_a) == first
    again, created_again = open_session(patient=patient_a, operation="other", user=surgeon_a)
    assert again.pk == first.pk and not created_again
    assert AuditEvent.objects.filter(
        action="create", patient_mrn=patient_a.mrn, detail__contains="session opened: SI screw"
    ).count() == 1

    close_session(first, user=surgeon_a)
    assert not first.is_open and first.closed_by == surgeon_a
    closed_at = first.closed_at
    close_session(first, user=surgeon_a)  # a second close changes nothing
    first.refresh_from_db()
    assert first.closed_at == closed_at
    assert AuditEvent.objects.filter(detail__contains="session closed").count() == 1
    assert open_session_for(patient_a) is None

    second, created = open_session(patient=patient_a, operation="revision", user=surgeon_a)
    assert created and second.pk != first.pk


def test_the_database_allows_one_open_session_per_patient(patient_a, patient_b, surgeon_a):
    from django.utils import timezone

    from webapp.operating.models import OperatingSession

    OperatingSession.objects.create(patient=patient_a, operation="one")
    OperatingSession.objects.create(patient=patient_b, operation="other patient")
    with pytest.raises(IntegrityError), transaction.atomic():
        OperatingSession.objects.create(patient=patient_a, operation="two")
    OperatingSession.objects.filter(patient=patient_a).update(closed_at=timezone.now())
    OperatingSession.objects.create(patient=patient_a, operation="two")
    assert OperatingSession.objects.filter(patient=patient_a, closed_at__isnull=True).count() == 1


@pytest.mark.parametrize("operation", ["", "   ", "x" * 201])
def test_an_operation_without_a_usable_name_is_refused(patient_a, surgeon_a, operation):
    from refusal import Refused
    from webapp.operating.models import OperatingSession
    from webapp.operating.services import open_session

    with pytest.raises(Refused, match="name the operation"):
        open_session(patient=patient_a, operation=operation, user=surgeon_a)
    assert not OperatingSession.objects.exists()


def test_the_session_ct_must_be_a_ready_ct_of_the_patient(patient_a, patient_b, surgeon_a):
    from webapp.operating.services import SessionRefused, open_session
    from webapp.records.models import CTStudy

    other = make_study(patient_b)
    with pytest.raises(SessionRefused, match="ready CT of this patient"):
        open_session(patient=patient_a, operation="nail", user=surgeon_a, study=other)
    pending = make_study(patient_a, series_instance_uid="1.2.9")
    CTStudy.objects.filter(pk=pending.pk).update(status=CTStudy.Status.IMPORTING)
    pending.refresh_from_db()
    with pytest.raises(SessionRefused, match="ready CT of this patient"):
        open_session(patient=patient_a, operation="nail", user=surgeon_a, study=pending)
    own = make_study(patient_a, series_instance_uid="1.2.10")
    session, created = open_session(patient=patient_a, operation="nail", user=surgeon_a, study=own)
    assert created and session.study == own


def test_open_and_close_through_the_pages(client, patient_a, surgeon_a):
    from django.urls import reverse

    from webapp.operating.models import OperatingSession

    client.force_login(surgeon_a)
    response = client.post(
        reverse("operating:open"), {"patient": patient_a.pk, "operation": "plate, right"}
    )
    session = OperatingSession.objects.get(patient=patient_a)
    assert response.status_code == 302 and response.url == reverse("operating:session", args=[session.pk])
    listing = client.get(reverse("operating:list")).content.decode()
    assert "plate, right" in listing
    response = client.post(reverse("operating:close", args=[session.pk]))
    assert response.status_code == 302
    session.refresh_from_db()
    assert not session.is_open
    assert "plate, right" not in client.get(reverse("operating:list")).content.decode()


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"patient": "abc", "operation": "x"}, "Choose the patient"),
        ({"operation": "x", "study": "not-a-number"}, "not this patient"),
        ({"operation": ""}, "name the operation"),
    ],
)
def test_bad_open_requests_get_a_message(client, patient_a, surgeon_a, fields, words):
    from django.urls import reverse

    from webapp.operating.models import OperatingSession

    client.force_login(surgeon_a)
    response = client.post(
        reverse("operating:open"), {"patient": patient_a.pk, **fields}, follow=True
    )
    assert response.status_code == 200
    assert words in response.content.decode()
    assert not OperatingSession.objects.exists()


def test_only_surgeons_open_and_close(client, make_user, team_a, patient_a, surgeon_a):
    from django.urls import reverse

    from webapp.operating.services import open_session

    reviewer = make_user("reviewer_a", "Reviewer", team=team_a)
    client.force_login(reviewer)
    response = client.post(reverse("operating:open"), {"patient": patient_a.pk, "operation": "x"})
    assert response.status_code == 403
    session, _ = open_session(patient=patient_a, operation="x", user=surgeon_a)
    assert client.post(reverse("operating:close", args=[session.pk])).status_code == 403
    session.refresh_from_db()
    assert session.is_open


def test_the_patient_page_opens_a_session_for_surgeons_only(
    client, make_user, team_a, patient_a, surgeon_a
):
    from django.urls import reverse

    from webapp.operating.models import OperatingSession

    detail = reverse("records:patient-detail", args=[patient_a.pk])
    client.force_login(surgeon_a)
    page = client.get(detail).content.decode()
    assert f'action="{reverse("operating:open")}"' in page
    assert f'name="patient" value="{patient_a.pk}"' in page
    response = client.post(
        reverse("operating:open"), {"patient": patient_a.pk, "operation": "SI screw"}
    )
    session = OperatingSession.objects.get(patient=patient_a, closed_at__isnull=True)
    assert response.url == reverse("operating:session", args=[session.pk])
    client.force_login(make_user("reviewer_page", "Reviewer", team=team_a))
    page = client.get(detail).content.decode()
    assert f'action="{reverse("operating:open")}"' not in page
    assert "Surgeons open intra-operative sessions" in page
