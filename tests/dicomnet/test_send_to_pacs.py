"""Results sent to a real PACS (Orthanc) by the send job over C-STORE, read back through
Orthanc's REST API; retries and audit when the PACS cannot be reached."""

from __future__ import annotations

import socket

import pydicom
import pytest

from tests.core.factories import isolated_media  # noqa: F401 - activates the fixture
from tests.dicomnet import results_rows as rows
from webapp.core.models import AuditEvent
from webapp.dicomnet.pacs import PacsEndpoint, PacsError, parse_endpoint, with_retries
from webapp.dicomnet.send import result_set, send_result_set, submit_send
from webapp.jobs.models import Job
from webapp.jobs.runner import execute_job


@pytest.fixture
def pacs_settings(settings, orthanc):
    settings.ORTHOFUSE_PACS = [f"{orthanc.aet}@127.0.0.1:{orthanc.dicom_port}"]
    settings.ORTHOFUSE_PACS_RETRY_DELAY_S = 0.05
    return orthanc


def _stored(orthanc) -> dict[str, dict]:
    """``{SOPClassUID: tags}`` of every instance Orthanc holds (simplified tag names)."""
    out = {}
    for ident in orthanc.request("GET", "/instances"):
        tags = orthanc.request("GET", f"/instances/{ident}/simplified-tags")
        out[tags["SOPClassUID"]] = tags
    return out


def test_registration_results_are_stored_and_read_back(pacs_settings, transactional_db):
    orthanc = pacs_settings
    reg = rows.registration(rows.make_patient())
    source = pydicom.dcmread(reg.xray.original_file.path)
    job = submit_send(registration_id=reg.pk)
    assert execute_job(job.pk, worker="test") == "succeeded"
    job.refresh_from_db()
    assert job.result["sent"] == [
        {"endpoint": f"ORTHANC@127.0.0.1:{orthanc.dicom_port}", "attempts": 1}
    ]
    stored = _stored(orthanc)
    sc, sr = stored["1.2.840.10008.5.1.4.1.1.7"], stored["1.2.840.10008.5.1.4.1.1.88.34"]
    for tags in (sc, sr):
        assert tags["PatientID"] == "SEND-1"
        assert tags["StudyInstanceUID"] == source.StudyInstanceUID
    assert sc["SourceImageSequence"][0]["ReferencedSOPInstanceUID"] == source.SOPInstanceUID
    evidence = sr["CurrentRequestedProcedureEvidenceSequence"][0]
    assert (evidence["ReferencedSeriesSequence"][0]["ReferencedSOPSequence"][0]
            ["ReferencedSOPInstanceUID"]) == source.SOPInstanceUID
    event = AuditEvent.objects.get(action="export")
    assert "DICOM sent registration" in event.detail and sr["SOPInstanceUID"] in event.detail
    assert event.patient_mrn == "SEND-1"
    # sending again stores the same instances, not copies
    again = submit_send(registration_id=reg.pk)
    assert execute_job(again.pk, worker="test") == "succeeded"
    assert len(orthanc.request("GET", "/instances")) == 2


def test_plan_report_is_stored(pacs_settings, transactional_db):
    orthanc = pacs_settings
    version = rows.plan_version(rows.make_patient("PLAN-1"))
    job = submit_send(plan_version_id=version.pk)
    assert execute_job(job.pk, worker="test") == "succeeded"
    [sr] = _stored(orthanc).values()
    assert sr["PatientID"] == "PLAN-1" and sr["SeriesDescription"] == "OrthoFuse plan SI screw"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_unreachable_pacs_fails_the_job_after_its_tries(settings, transactional_db):
    settings.ORTHOFUSE_PACS = [f"NOBODY@127.0.0.1:{_closed_port()}"]
    settings.ORTHOFUSE_PACS_ATTEMPTS = 2
    settings.ORTHOFUSE_PACS_RETRY_DELAY_S = 0.01
    reg = rows.registration(rows.make_patient())
    job = submit_send(registration_id=reg.pk)
    assert execute_job(job.pk, worker="test") == "failed"
    job.refresh_from_db()
    assert "1 of 1 PACS failed: NOBODY@127.0.0.1" in job.error
    assert "association refused" in job.error
    assert "failed" in AuditEvent.objects.get(action="export").detail


def test_no_pacs_configured_is_a_clear_failure(settings, transactional_db):
    settings.ORTHOFUSE_PACS = []
    reg = rows.registration(rows.make_patient())
    job = submit_send(registration_id=reg.pk)
    assert execute_job(job.pk, worker="test") == "failed"
    assert Job.objects.get(pk=job.pk).error == "no PACS is configured (setting ORTHOFUSE_PACS)"


def test_retries_until_success_and_gives_up_after_the_last_try():
    calls, waits = [], []

    def flaky() -> None:
        calls.append(1)
        if len(calls) < 3:
            raise PacsError("busy")

    assert with_retries(flaky, attempts=3, delay_s=1.0, sleep=waits.append) == 3
    assert waits == [1.0, 2.0]
    def down() -> None:
        raise PacsError("down")

    with pytest.raises(PacsError, match="down"):
        with_retries(down, attempts=2, delay_s=1.0, sleep=waits.append)
    assert waits == [1.0, 2.0, 1.0]


def test_send_to_two_endpoints_reports_each(pacs_settings, transactional_db):
    orthanc = pacs_settings
    reg = rows.registration(rows.make_patient())
    good = PacsEndpoint(orthanc.aet, "127.0.0.1", orthanc.dicom_port)
    bad = PacsEndpoint("NOBODY", "127.0.0.1", _closed_port())
    outcome = send_result_set(result_set(registration_id=reg.pk), [bad, good], attempts=1)
    assert [s["endpoint"] for s in outcome["sent"]] == [str(good)]
    assert [f["endpoint"] for f in outcome["failed"]] == [str(bad)]


@pytest.mark.parametrize("item, expected", [
    ("PACS@10.0.0.5:104", PacsEndpoint("PACS", "10.0.0.5", 104)),
    ({"ae": "ARCHIVE", "host": "pacs.local", "port": "11112"},
     PacsEndpoint("ARCHIVE", "pacs.local", 11112)),
])
def test_endpoints_parse(item, expected):
    assert parse_endpoint(item) == expected


@pytest.mark.parametrize("item, message", [
    ("pacs.local:104", "expected AE@host:port"),
    ("AVERYLONGAETITLE17@h:104", "expected AE@host:port"),
    ("PACS@h:70000", "out of range"),
    ({"ae": "X"}, "expected ae, host and port"),
])
def test_bad_endpoints_are_named(item, message):
    with pytest.raises(ValueError, match=message):
        parse_endpoint(item)
