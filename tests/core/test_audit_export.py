"""Audit export: ``manage.py export_audit`` and the admin's export page write CSV rows that
match the events, or DICOM audit messages (PS3.15 A.5) with the required elements; only
site admins export, and every export is itself audited."""

from __future__ import annotations

import csv
import io
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from webapp.core.audit import record
from webapp.core.audit_export import CSV_HEADER, ExportRefused, parse_bound
from webapp.core.models import AuditEvent

A = AuditEvent.Action
EXPORT_URL = "admin:core_auditevent_export"


@pytest.fixture
def patient(db):
    from webapp.records.models import Patient

    return Patient.objects.create(mrn="MRN-7731", family_name="Test")


@pytest.fixture
def events(db, rf, surgeon_a, patient):
    """A patient read from an address, a failed sign-in, and a change without a patient."""
    request = rf.get(f"/patients/{patient.pk}/", REMOTE_ADDR="10.1.2.3")
    request.user = surgeon_a
    read = record(request, A.VIEW, patient=patient, obj=patient, detail="patient page")
    failed = AuditEvent.objects.create(username="mallory", action=A.LOGIN_FAILED,
                                       ip_address="10.9.9.9", detail="failed login")
    changed = record(None, A.UPDATE, user=surgeon_a, detail="=HYPERLINK(\"x\") C-arm edited")
    return [read, failed, changed]


def run_export(*args: str) -> str:
    out = io.StringIO()
    call_command("export_audit", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def parse_messages(text: str) -> list[ET.Element]:
    root = ET.fromstring(text.encode("utf-8"))
    assert root.tag == "AuditMessages"
    return list(root)


@pytest.mark.django_db
def test_csv_has_one_row_per_event_matching_it(events):
    rows = list(csv.reader(io.StringIO(run_export("--format", "csv"))))
    assert tuple(rows[0]) == CSV_HEADER
    by_id = {int(row[0]): dict(zip(CSV_HEADER, row, strict=True)) for row in rows[1:]}
    read, failed, changed = events
    assert set(by_id) == {read.pk, failed.pk, changed.pk}  # the export event comes after
    row = by_id[read.pk]
    assert row["user"] == "surgeon_a" and row["action"] == "view"
    assert row["patient_mrn"] == "MRN-7731" and row["object"] == f"Patient {read.object_id}"
    assert row["address"] == "10.1.2.3" and row["hash"] == AuditEvent.objects.get(pk=read.pk).row_hash
    assert datetime.fromisoformat(row["time"]) == read.created_at
    assert by_id[failed.pk]["user"] == "mallory" and by_id[failed.pk]["patient_mrn"] == ""
    assert by_id[changed.pk]["detail"].startswith("'=HYPERLINK")  # no formula in a spreadsheet


@pytest.mark.django_db
def test_dicom_patient_read_has_the_a5_elements(events):
    read = events[0]
    messages = parse_messages(run_export("--format", "dicom"))
    assert len(messages) == 3 and all(m.tag == "AuditMessage" for m in messages)
    message = messages[0]
    ident = message.find("EventIdentification")
    assert ident.get("EventActionCode") == "R" and ident.get("EventOutcomeIndicator") == "0"
    assert datetime.fromisoformat(ident.get("EventDateTime")) == read.created_at
    event_id = ident.find("EventID")
    assert (event_id.get("csd-code"), event_id.get("codeSystemName")) == ("110110", "DCM")
    requestor = [p for p in message.findall("ActiveParticipant") if p.get("UserIsRequestor") == "true"]
    assert len(requestor) == 1
    assert requestor[0].get("UserID") == "surgeon_a"
    assert requestor[0].get("NetworkAccessPointID") == "10.1.2.3"
    source = message.find("AuditSourceIdentification")
    assert source is not None and source.get("AuditSourceID")
    patient = [
        o for o in message.findall("ParticipantObjectIdentification")
        if o.get("ParticipantObjectTypeCode") == "1"
    ]
    assert len(patient) == 1 and patient[0].get("ParticipantObjectID") == "MRN-7731"
    assert patient[0].get("ParticipantObjectTypeCodeRole") == "1"
    id_type = patient[0].find("ParticipantObjectIDTypeCode")
    assert id_type.get("csd-code") == "2" and id_type.get("originalText") == "Patient Number"
    # element order of the A.5 schema
    tags = [child.tag for child in message]
    assert tags.index("EventIdentification") == 0
    assert tags.index("AuditSourceIdentification") > max(
        i for i, t in enumerate(tags) if t == "ActiveParticipant"
    )


@pytest.mark.django_db
def test_dicom_codes_for_sign_in_and_imaging(events, surgeon_a, patient):
    from tests.core.factories import make_study

    study = make_study(patient)
    record(None, A.VIEW, user=surgeon_a, patient=patient, obj=study)
    messages = parse_messages(run_export("--format", "dicom"))
    failed = messages[1].find("EventIdentification")
    assert failed.find("EventID").get("csd-code") == "110114"
    assert failed.find("EventTypeCode").get("csd-code") == "110122"
    assert failed.get("EventOutcomeIndicator") == "4"
    assert messages[3].find("EventIdentification/EventID").get("csd-code") == "110103"


@pytest.mark.django_db
def test_period_bounds_and_refusals(events, tmp_path):
    read = events[0]
    AuditEvent.objects.create(username="old", action=A.VIEW,
                              created_at=read.created_at - timedelta(days=3))
    day = read.created_at.astimezone(UTC).date().isoformat()
    target = tmp_path / "audit.csv"
    run_export("--format", "csv", "--since", day, "--until", day, "--output", str(target))
    users = [row[2] for row in csv.reader(target.open(encoding="utf-8"))][1:]
    assert "old" not in users and "surgeon_a" in users
    with pytest.raises(CommandError, match="not an ISO 8601"):
        run_export("--since", "last tuesday")
    with pytest.raises(CommandError, match="period is empty"):
        run_export("--since", "2026-12-08", "--until", "2026-12-01")
    with pytest.raises(CommandError, match="does not exist"):
        run_export("--output", str(tmp_path / "missing" / "a.csv"))
    with pytest.raises(ExportRefused):
        parse_bound("2026-13-45")


@pytest.mark.django_db
def test_the_command_export_is_audited(events):
    run_export("--format", "dicom")
    exported = AuditEvent.objects.filter(action=A.EXPORT, object_type="AuditTrail").get()
    assert "dicom" in exported.detail and "3 events" in exported.detail
    message = parse_messages(run_export("--format", "dicom"))[-1]  # the first export, now listed
    assert message.find("EventIdentification/EventID").get("csd-code") == "110101"


@pytest.mark.django_db
def test_admin_page_downloads_and_is_audited(client, make_user, events):
    client.force_login(make_user("root", superuser=True))
    url = reverse(EXPORT_URL)
    page = client.get(url)
    assert page.status_code == 200 and b"<script>" not in page.content
    listing = client.get(reverse("admin:core_auditevent_changelist")).content.decode()
    assert f'href="{url}"' in listing
    before = set(AuditEvent.objects.values_list("id", flat=True))  # incl. root's sign-in
    response = client.post(url, {"format": "csv", "since": "", "until": ""})
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    assert response["Content-Disposition"].startswith('attachment; filename="orthofuse-audit-')
    text = b"".join(response.streaming_content).decode("utf-8")
    assert {int(row[0]) for row in list(csv.reader(io.StringIO(text)))[1:]} == before
    exported = AuditEvent.objects.get(action=A.EXPORT, object_type="AuditTrail")
    assert exported.username == "root" and "export page" in exported.detail
    assert exported.path == url
    wrong = client.post(url, {"format": "csv", "since": "2026-12-08", "until": "2026-12-01"})
    assert wrong.status_code == 200 and b"first day is after the last day" in wrong.content


@pytest.mark.django_db
def test_non_admins_cannot_export(client, make_user, surgeon_a, events):
    staff = make_user("clerk")
    staff.is_staff = True
    staff.save()
    url = reverse(EXPORT_URL)
    for user in (surgeon_a, staff):
        client.force_login(user)
        assert client.get(url).status_code == 403
        assert client.post(url, {"format": "csv"}).status_code == 403
    client.logout()
    assert client.post(url, {"format": "csv"}).status_code == 302  # to sign-in
    assert not AuditEvent.objects.filter(action=A.EXPORT).exists()
