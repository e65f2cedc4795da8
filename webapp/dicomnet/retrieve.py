"""Pulling one series from a PACS by C-GET into a folder (the PACS stores each instance
back to us on the same association), with limits on count and bytes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from pynetdicom import AE, build_role, evt
from pynetdicom.sop_class import (
    CTImageStorage,
    EnhancedCTImageStorage,
    StudyRootQueryRetrieveInformationModelGet,
)

from webapp.dicomnet.pacs import (
    PENDING,
    TIMEOUT_S,
    PacsEndpoint,
    PacsError,
    calling_ae,
    series_query,
)

STORAGE_CLASSES = (CTImageStorage, EnhancedCTImageStorage)
TRANSFER_SYNTAXES = [
    "1.2.840.10008.1.2.1",  # explicit VR little endian
    "1.2.840.10008.1.2",  # implicit VR little endian
]
OUT_OF_RESOURCES = 0xA702
def c_get_series(
    endpoint: PacsEndpoint,
    study_uid: str,
    series_uid: str,
    folder: Path,
    *,
    max_instances: int = 5000,
    max_bytes: int = 2 * 1024**3,
    report: Callable[[int, int | None], None] = lambda done, total: None,
) -> int:
    """C-GET series ``series_uid`` into ``folder`` (one file per instance); returns how many
    were stored. Raises :class:`PacsError` when the PACS fails or a limit is passed (the
    folder then holds a partial series: the caller discards it)."""
    folder.mkdir(parents=True, exist_ok=True)
    state = {"count": 0, "bytes": 0, "over": ""}

    def on_store(event) -> int:
        if state["over"]:
            return OUT_OF_RESOURCES
        ds = event.dataset
        ds.file_meta = event.file_meta
        if str(ds.get("SeriesInstanceUID", "")) != series_uid:
            return 0xA900  # not what we asked for
        path = folder / f"{state['count']:05d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        state["count"] += 1
        state["bytes"] += path.stat().st_size
        if state["count"] > max_instances or state["bytes"] > max_bytes:
            state["over"] = (f"the series is larger than the limit ({max_instances} instances, "
                             f"{max_bytes // 1024**2} MiB)")
        return 0x0000

    ae = AE(ae_title=calling_ae())
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = TIMEOUT_S
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelGet)
    roles = []
    for sop_class in STORAGE_CLASSES:
        ae.add_requested_context(sop_class, TRANSFER_SYNTAXES)
        roles.append(build_role(sop_class, scp_role=True))
    assoc = ae.associate(endpoint.host, endpoint.port, ae_title=endpoint.ae_title,
                         ext_neg=roles, evt_handlers=[(evt.EVT_C_STORE, on_store)])
    if not assoc.is_established:
        raise PacsError(f"{endpoint}: association refused or no answer")
    query = series_query(study_uid, series_uid)
    final = None
    try:
        for status, _identifier in assoc.send_c_get(query, StudyRootQueryRetrieveInformationModelGet):
            if not status:
                raise PacsError(f"{endpoint}: no answer to C-GET")
            code = int(status.Status)
            if code in PENDING:
                remaining = status.get("NumberOfRemainingSuboperations")
                total = state["count"] + int(remaining) if remaining is not None else None
                report(state["count"], total)
                continue
            final = status
    finally:
        if assoc.is_established:
            assoc.release()
    if state["over"]:
        raise PacsError(f"{endpoint}: {state['over']}")
    code = int(final.Status) if final is not None else -1
    failed = int(final.get("NumberOfFailedSuboperations", 0) or 0) if final is not None else 0
    if code not in (0x0000, 0xB000) or failed:
        raise PacsError(f"{endpoint}: C-GET ended with status 0x{code & 0xFFFF:04X} "
                        f"({failed} instance(s) failed, {state['count']} received)")
    if state["count"] == 0:
        raise PacsError(f"{endpoint}: the series {series_uid} has no CT instance there")
    report(state["count"], state["count"])
    return state["count"]
