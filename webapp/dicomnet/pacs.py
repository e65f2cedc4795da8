"""The PACS endpoints we send to and query (settings ``ORTHOFUSE_PACS``), and C-STORE.

``ORTHOFUSE_PACS`` is a list; each item is ``"AE@host:port"`` (DIMSE: C-STORE, C-FIND,
C-GET), a DICOMweb base URL ``"http(s)://host:port/dicom-web"`` (STOW-RS, QIDO-RS, WADO-RS;
see ``dicomweb``) or a dict ``{"ae": ..., "host": ..., "port": ...}``. The environment
variable is a comma list of strings.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from django.conf import settings
from pydicom.dataset import Dataset
from pynetdicom import AE

ENDPOINT_RE = re.compile(r"^\s*([^@\\]{1,16})@([^:@\s]+):(\d{1,5})\s*$")
TIMEOUT_S = 30


class PacsError(RuntimeError):
    """A PACS could not be reached or refused an object; the message says which and why."""


@dataclass(frozen=True)
class PacsEndpoint:
    ae_title: str
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.ae_title}@{self.host}:{self.port}"


@dataclass(frozen=True)
class WebEndpoint:
    """A DICOMweb service by its base URL (QIDO/WADO/STOW under it)."""

    url: str

    def __str__(self) -> str:
        return self.url


Endpoint = PacsEndpoint | WebEndpoint
URL_RE = re.compile(r"^https?://[^\s/@]+(/[^\s]*)?$")


def parse_endpoint(item: str | dict) -> Endpoint:
    """One endpoint from ``"AE@host:port"``, a DICOMweb URL or ``{"ae", "host", "port"}``;
    ValueError names the bad item."""
    if isinstance(item, str) and item.strip().lower().startswith(("http://", "https://")):
        url = item.strip().rstrip("/")
        if not URL_RE.match(url):
            raise ValueError(f"ORTHOFUSE_PACS item {item!r}: not a DICOMweb URL")
        return WebEndpoint(url)
    if isinstance(item, dict):
        try:
            ae, host, port = str(item["ae"]).strip(), str(item["host"]).strip(), int(item["port"])
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"ORTHOFUSE_PACS item {item!r}: expected ae, host and port") from None
    else:
        found = ENDPOINT_RE.match(str(item))
        if not found:
            raise ValueError(f"ORTHOFUSE_PACS item {item!r}: expected AE@host:port")
        ae, host, port = found.group(1).strip(), found.group(2), int(found.group(3))
    if not ae or len(ae) > 16 or not ae.isascii():
        raise ValueError(f"ORTHOFUSE_PACS item {item!r}: the AE title must be 1 to 16 ASCII "
                         "characters")
    if not 0 < port <= 65535:
        raise ValueError(f"ORTHOFUSE_PACS item {item!r}: port {port} is out of range")
    return PacsEndpoint(ae, host, port)


def pacs_endpoints() -> list[Endpoint]:
    """The configured endpoints (possibly none)."""
    items = getattr(settings, "ORTHOFUSE_PACS", []) or []
    if isinstance(items, str):
        items = [s for s in items.split(",") if s.strip()]
    return [parse_endpoint(item) for item in items]


def calling_ae() -> str:
    return str(getattr(settings, "ORTHOFUSE_DICOM_AE_TITLE", "ORTHOFUSE"))


def c_store(endpoint: PacsEndpoint, datasets: Sequence[Dataset]) -> None:
    """Store ``datasets`` on ``endpoint`` on one association; PacsError on any failure."""
    ae = AE(ae_title=calling_ae())
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = TIMEOUT_S
    for sop_class in sorted({str(ds.SOPClassUID) for ds in datasets}):
        ae.add_requested_context(sop_class, ["1.2.840.10008.1.2.1", "1.2.840.10008.1.2"])
    assoc = ae.associate(endpoint.host, endpoint.port, ae_title=endpoint.ae_title)
    if not assoc.is_established:
        raise PacsError(f"{endpoint}: association refused or no answer")
    try:
        for ds in datasets:
            status = assoc.send_c_store(ds)
            if not status:
                raise PacsError(f"{endpoint}: no answer to C-STORE of {ds.SOPInstanceUID}")
            code = int(status.Status)
            if code != 0x0000 and not 0xB000 <= code <= 0xBFFF:
                comment = str(status.get("ErrorComment", "") or "")
                raise PacsError(f"{endpoint}: C-STORE failed with status 0x{code:04X} {comment}"
                                .strip())
    finally:
        if assoc.is_established:
            assoc.release()


def with_retries(action: Callable[[], None], *, attempts: int = 3, delay_s: float = 1.0,
                 sleep: Callable[[float], None] = time.sleep) -> int:
    """Run ``action`` until it does not raise PacsError, at most ``attempts`` times with a
    doubling delay; returns the attempts used, or raises the last PacsError."""
    for attempt in range(1, attempts + 1):
        try:
            action()
            return attempt
        except PacsError:
            if attempt == attempts:
                raise
            sleep(delay_s * 2 ** (attempt - 1))
    raise AssertionError("unreachable")


# C-GET/C-MOVE statuses that mean "still working, more sub-operations to come".
PENDING = (0xFF00, 0xFF01)


def series_query(study_uid: str, series_uid: str) -> Dataset:
    """The Study Root identifier that asks a PACS for one series (C-GET, C-MOVE)."""
    query = Dataset()
    query.QueryRetrieveLevel = "SERIES"
    query.StudyInstanceUID = study_uid
    query.SeriesInstanceUID = series_uid
    return query

