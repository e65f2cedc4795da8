"""Export of the audit trail for a hospital's security office: CSV (one row per event) or
DICOM audit messages (PS3.15 Annex A.5, the XML ``AuditMessage``), between two times.

Used by ``manage.py export_audit`` and the admin's export page; every export is itself
audited (object ``AuditTrail``, which the DICOM form reports as 110101 "Audit Log Used").

How an audit row becomes a DICOM message (EventID from DICOM CID 400, action code C/R/U/D/E):

======================================  ==========================================  ======
row                                     EventID                                     action
======================================  ==========================================  ======
login, failed login (outcome 4)         110114 User Authentication (type 110122)    E
export of the audit trail               110101 Audit Log Used                       R
download, export                        110106 Export                               R
refused DICOM store (outcome 4)         110107 Import                               C
CT study or X-ray read/changed          110103 DICOM Instances Accessed             R/C/U/D
token, second factor, user changed      110113 Security Alert (type 110137)         C/U/D
anything else with a patient            110110 Patient Record                       R/C/U/D/E
anything else without one               110100 Application Activity                 R/C/U/D/E
======================================  ==========================================  ======

The patient is a ParticipantObjectIdentification of type 1 (person), role 1 (patient) and
ID type 2 (RFC-3881 "Patient Number", the MRN). Times are UTC (ISO 8601 with ``Z``).
"""

from __future__ import annotations

import csv
import io
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from django.conf import settings
from django.db.models import QuerySet
from django.utils import timezone

from refusal import Refused
from webapp.core.models import AuditEvent

FORMATS = ("csv", "dicom")
CSV_HEADER = (
    "id", "time", "user", "action", "patient_mrn", "object", "detail", "address", "path", "hash",
)
CONTENT_TYPES = {"csv": "text/csv; charset=utf-8", "dicom": "application/xml; charset=utf-8"}
EXTENSIONS = {"csv": "csv", "dicom": "xml"}

IMAGING_TYPES = frozenset({"CTStudy", "XrayImage"})
SECURITY_TYPES = frozenset({"ApiToken", "TOTPDevice", "StaticDevice", "User"})
A = AuditEvent.Action
_ACTION_CODES = {
    A.VIEW: "R", A.DOWNLOAD: "R", A.EXPORT: "R", A.CREATE: "C", A.UPDATE: "U", A.DELETE: "D",
    A.JOB_START: "E", A.LOGIN: "E", A.LOGIN_FAILED: "E", A.DICOM_REFUSED: "C",
}
_FAILED = frozenset({A.LOGIN_FAILED, A.DICOM_REFUSED})
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")  # not allowed in XML 1.0
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


class ExportRefused(Refused):
    """A bad export request (format or time bound)."""


@dataclass(frozen=True)
class AuditTrail:
    """The audit trail as the object of an export event (``object_type`` 'AuditTrail')."""

    pk: str = "export"


@dataclass(frozen=True)
class Code:
    """A DICOM coded value (``csd-code``, ``codeSystemName``, ``originalText``)."""

    code: str
    scheme: str
    meaning: str

    def element(self, parent: ET.Element, tag: str) -> ET.Element:
        return ET.SubElement(
            parent, tag,
            {"csd-code": self.code, "codeSystemName": self.scheme, "originalText": self.meaning},
        )


USER_AUTHENTICATION = Code("110114", "DCM", "User Authentication")
LOGIN = Code("110122", "DCM", "Login")
AUDIT_LOG_USED = Code("110101", "DCM", "Audit Log Used")
EXPORT = Code("110106", "DCM", "Export")
IMPORT = Code("110107", "DCM", "Import")
INSTANCES_ACCESSED = Code("110103", "DCM", "DICOM Instances Accessed")
SECURITY_ALERT = Code("110113", "DCM", "Security Alert")
USER_SECURITY_CHANGED = Code("110137", "DCM", "User Security Attributes Changed")
PATIENT_RECORD = Code("110110", "DCM", "Patient Record")
APPLICATION_ACTIVITY = Code("110100", "DCM", "Application Activity")
PATIENT_NUMBER = Code("2", "RFC-3881", "Patient Number")
URI = Code("12", "RFC-3881", "URI")
APPLICATION_SERVER = Code("4", "DCM", "Application Server")


# ---- time bounds -------------------------------------------------------------------------


def parse_bound(text: str | None, *, upper: bool = False) -> datetime | None:
    """An ISO 8601 date or date-time as an aware datetime (naive: the site's time zone).

    A date alone is the start of that day; as an upper bound the start of the next day, so
    ``--until 2026-12-07`` includes all of the 7th. None or '' is no bound."""
    if text is None or not str(text).strip():
        return None
    raw = str(text).strip()
    try:
        if len(raw) == 10:
            return day_bound(date.fromisoformat(raw), upper=upper)
        moment = datetime.fromisoformat(raw)
    except ValueError as exc:
        raise ExportRefused(
            f"{raw!r} is not an ISO 8601 date or time (e.g. 2026-12-07 or 2026-12-07T14:30Z)"
        ) from exc
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment, timezone.get_default_timezone())
    return moment


def day_bound(day: date, *, upper: bool = False) -> datetime:
    """The start of ``day`` (upper: of the next day) in the site's time zone."""
    start = datetime.combine(day + timedelta(days=1 if upper else 0), time.min)
    return timezone.make_aware(start, timezone.get_default_timezone())


def select_events(since: datetime | None, until: datetime | None) -> QuerySet:
    """Audit events with ``since <= created_at < until`` in chain (id) order."""
    if since is not None and until is not None and since >= until:
        raise ExportRefused(f"the period is empty: {since.isoformat()} is not before {until.isoformat()}")
    events = AuditEvent.objects.order_by("id")
    if since is not None:
        events = events.filter(created_at__gte=since)
    if until is not None:
        events = events.filter(created_at__lt=until)
    return events


def utc_text(moment: datetime) -> str:
    """ISO 8601 in UTC with microseconds and ``Z``."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def period_text(since: datetime | None, until: datetime | None) -> str:
    return f"{utc_text(since) if since else 'start'} .. {utc_text(until) if until else 'now'}"


# ---- CSV -----------------------------------------------------------------------------------


def _cell(value: object) -> str:
    """A CSV cell; text that a spreadsheet would run as a formula is prefixed with '."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def csv_row(event: AuditEvent) -> list[str]:
    obj = f"{event.object_type} {event.object_id}".strip()
    values = (
        event.pk, utc_text(event.created_at), event.username, event.action, event.patient_mrn,
        obj, event.detail, event.ip_address or "", event.path, event.row_hash,
    )
    return [_cell(v) for v in values]


def iter_csv(events: Iterable[AuditEvent]) -> Iterator[str]:
    """The CSV text in chunks: the header, then one line per event."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(CSV_HEADER)
    for event in events:
        writer.writerow(csv_row(event))
        if buffer.tell() > 64 * 1024:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


# ---- DICOM audit messages (PS3.15 A.5) ------------------------------------------------------


def _text(value: object) -> str:
    return _CONTROL.sub("?", "" if value is None else str(value))


def event_codes(event: AuditEvent) -> tuple[Code, Code | None]:
    """The EventID and the optional EventTypeCode of one audit row (table above)."""
    action, kind = event.action, event.object_type
    if action in (A.LOGIN, A.LOGIN_FAILED):
        return USER_AUTHENTICATION, LOGIN
    if kind == "AuditTrail":
        return AUDIT_LOG_USED, None
    if action in (A.DOWNLOAD, A.EXPORT):
        return EXPORT, None
    if action == A.DICOM_REFUSED:
        return IMPORT, None
    if kind in IMAGING_TYPES:
        return INSTANCES_ACCESSED, None
    if kind in SECURITY_TYPES:
        return SECURITY_ALERT, USER_SECURITY_CHANGED
    return (PATIENT_RECORD if event.patient_mrn else APPLICATION_ACTIVITY), None


def source_id() -> str:
    """The AuditSourceID: this node's DICOM AE title."""
    return str(getattr(settings, "ORTHOFUSE_DICOM_AE_TITLE", "") or "ORTHOFUSE")


def _participant(message: ET.Element, user_id: str, requestor: bool, address: str) -> None:
    attrs = {"UserID": user_id, "UserIsRequestor": "true" if requestor else "false"}
    if address:
        attrs |= {"NetworkAccessPointID": address, "NetworkAccessPointTypeCode": "2"}
    ET.SubElement(message, "ActiveParticipant", attrs)


def _object(message: ET.Element, object_id: str, type_code: str, role: str, id_type: Code,
            name: str = "") -> None:
    node = ET.SubElement(message, "ParticipantObjectIdentification", {
        "ParticipantObjectID": object_id, "ParticipantObjectTypeCode": type_code,
        "ParticipantObjectTypeCodeRole": role,
    })
    id_type.element(node, "ParticipantObjectIDTypeCode")
    if name:
        ET.SubElement(node, "ParticipantObjectName").text = name


def audit_message(event: AuditEvent, source: str) -> ET.Element:
    """One PS3.15 A.5 ``AuditMessage`` for one audit row."""
    event_id, type_code = event_codes(event)
    failed = event.action in _FAILED
    message = ET.Element("AuditMessage")
    ident = ET.SubElement(message, "EventIdentification", {
        "EventActionCode": _ACTION_CODES.get(event.action, "E"),
        "EventDateTime": utc_text(event.created_at),
        "EventOutcomeIndicator": "4" if failed else "0",
    })
    event_id.element(ident, "EventID")
    if type_code is not None:
        type_code.element(ident, "EventTypeCode")
    if failed and event.detail:
        ET.SubElement(ident, "EventOutcomeDescription").text = _text(event.detail)
    _participant(message, _text(event.username) or "unknown", True, _text(event.ip_address or ""))
    _participant(message, source, False, "")
    audit_source = ET.SubElement(message, "AuditSourceIdentification", {"AuditSourceID": source})
    APPLICATION_SERVER.element(audit_source, "AuditSourceTypeCode")
    if event.patient_mrn:
        _object(message, _text(event.patient_mrn), "1", "1", PATIENT_NUMBER)
    if event.object_type == "AuditTrail":
        _object(message, _text(event.path) or "audit-trail", "2", "13", URI, "Security Audit Log")
    elif event.object_type:
        kind = Code(_text(event.object_type), "99ORTHOFUSE", _text(event.object_type))
        _object(message, _text(event.object_id) or "-", "2", "4", kind)
    return message


def iter_dicom(events: Iterable[AuditEvent]) -> Iterator[str]:
    """One XML document: ``<AuditMessages>`` holding one ``AuditMessage`` per event."""
    source = _text(source_id())
    yield '<?xml version="1.0" encoding="UTF-8"?>\n<AuditMessages>\n'
    chunk: list[str] = []
    for event in events:
        chunk.append(ET.tostring(audit_message(event, source), encoding="unicode") + "\n")
        if len(chunk) >= 500:
            yield "".join(chunk)
            chunk = []
    chunk.append("</AuditMessages>\n")
    yield "".join(chunk)


def iter_export(fmt: str, events: QuerySet) -> Iterator[str]:
    """The export text of ``events`` in chunks (``fmt`` 'csv' or 'dicom')."""
    if fmt not in FORMATS:
        raise ExportRefused(f"unknown export format {fmt!r}: choose csv or dicom")
    rows = events.iterator(chunk_size=2000)
    return iter_csv(rows) if fmt == "csv" else iter_dicom(rows)


def start_export(request, fmt: str, since: datetime | None, until: datetime | None,
                 *, via: str, user=None) -> tuple[QuerySet, int]:
    """Fix the rows (those present now), audit the export, and return the rows and count.

    The export is audited before any row is written, so an interrupted download counts."""
    from webapp.core.audit import record

    if fmt not in FORMATS:
        raise ExportRefused(f"unknown export format {fmt!r}: choose csv or dicom")
    events = select_events(since, until)
    last = AuditEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0
    events = events.filter(id__lte=last)
    count = events.count()
    record(
        request, A.EXPORT, obj=AuditTrail(), user=user,
        detail=f"audit trail exported as {fmt}, {period_text(since, until)}, {count} events, {via}",
    )
    return events, count


def file_name(fmt: str, since: datetime | None, until: datetime | None) -> str:
    first = since.astimezone(UTC).strftime("%Y%m%d") if since else "start"
    end = (until or timezone.now()).astimezone(UTC).strftime("%Y%m%d")
    return f"orthofuse-audit-{first}-{end}.{EXTENSIONS[fmt]}"
