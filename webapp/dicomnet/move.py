"""C-MOVE of one series from a PACS to our own listener (``manage.py dicom_listener``):
the PACS sends the instances to our AE title, the listener files them and makes the CT
study once the series is complete; :func:`wait_for_study` waits for that study."""

from __future__ import annotations

import time
from collections.abc import Callable

from pynetdicom import AE
from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelMove

from webapp.dicomnet.pacs import (
    PENDING,
    TIMEOUT_S,
    PacsEndpoint,
    PacsError,
    calling_ae,
    series_query,
)
from webapp.records.models import CTStudy, Patient


def c_move_series(endpoint: PacsEndpoint, study_uid: str, series_uid: str,
                  destination_ae: str,
                  report: Callable[[int, int | None], None] = lambda done, total: None) -> int:
    """Ask ``endpoint`` to send the series to ``destination_ae``; returns how many instances
    it sent. Raises :class:`PacsError` (unknown destination, failures, nothing sent)."""
    ae = AE(ae_title=calling_ae())
    ae.acse_timeout = ae.network_timeout = TIMEOUT_S
    ae.dimse_timeout = 10 * TIMEOUT_S  # the answer waits for every sub-operation
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelMove)
    assoc = ae.associate(endpoint.host, endpoint.port, ae_title=endpoint.ae_title)
    if not assoc.is_established:
        raise PacsError(f"{endpoint}: association refused or no answer")
    query = series_query(study_uid, series_uid)
    final = None
    try:
        for status, _identifier in assoc.send_c_move(
                query, destination_ae, StudyRootQueryRetrieveInformationModelMove):
            if not status:  # Orthanc aborts when the destination is unknown
                raise PacsError(f"{endpoint}: no answer to C-MOVE (does it know our AE title "
                                f"{destination_ae!r}? add it as a modality there)")
            if int(status.Status) in PENDING:
                done = int(status.get("NumberOfCompletedSuboperations", 0) or 0)
                remaining = status.get("NumberOfRemainingSuboperations")
                report(done, done + int(remaining) if remaining is not None else None)
                continue
            final = status
    finally:
        if assoc.is_established:
            assoc.release()
    code = int(final.Status) if final is not None else -1
    if code == 0xA801:
        raise PacsError(f"{endpoint}: it does not know our AE title {destination_ae!r} "
                        "(add it as a modality there)")
    failed = int(final.get("NumberOfFailedSuboperations", 0) or 0) if final is not None else 0
    completed = int(final.get("NumberOfCompletedSuboperations", 0) or 0) if final else 0
    if code not in (0x0000, 0xB000) or failed:
        raise PacsError(f"{endpoint}: C-MOVE ended with status 0x{code & 0xFFFF:04X} "
                        f"({failed} instance(s) failed, {completed} sent)")
    if completed == 0:
        raise PacsError(f"{endpoint}: the series {series_uid} has no instance there")
    return completed


def wait_for_study(patient: Patient, series_uid: str, timeout_s: float,
                   period_s: float = 0.5) -> CTStudy:
    """The study the listener makes of ``series_uid`` for ``patient``; PacsError after
    ``timeout_s`` (the listener is not running, or refused the series: see the audit)."""
    deadline = time.monotonic() + timeout_s
    while True:
        study = CTStudy.objects.filter(series_instance_uid=series_uid,
                                       status=CTStudy.Status.READY).first()
        if study is not None:
            if study.patient_id != patient.pk:
                raise PacsError(f"the series was filed for patient {study.patient.mrn!r}, "
                                f"not {patient.mrn!r}")
            return study
        if time.monotonic() > deadline:
            raise PacsError(f"our listener made no CT study of the series within {timeout_s:g} s"
                            " (is dicom_listener running? refusals are in the audit log)")
        time.sleep(period_s)
