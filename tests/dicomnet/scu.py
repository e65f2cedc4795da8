"""A small Storage SCU for the tests (pynetdicom's StoreSCU API)."""

from __future__ import annotations

from pathlib import Path

from pydicom.dataset import Dataset
from pynetdicom import AE, _config
from pynetdicom.sop_class import Verification

HOST = "127.0.0.1"


def echo(port: int, *, calling_ae: str = "TESTSCU", called_ae: str = "ORTHOFUSE") -> int | None:
    """C-ECHO status, or None when the association was not accepted."""
    ae = AE(ae_title=calling_ae)
    ae.add_requested_context(Verification)
    assoc = ae.associate(HOST, port, ae_title=called_ae)
    if not assoc.is_established:
        return None
    try:
        status = assoc.send_c_echo()
        return int(status.Status) if status else None
    finally:
        assoc.release()


def _context(item: Dataset | Path) -> tuple[str, str]:
    if isinstance(item, Dataset):
        return str(item.SOPClassUID), str(item.file_meta.TransferSyntaxUID)
    from pydicom.filereader import read_file_meta_info

    meta = read_file_meta_info(item)
    return str(meta.MediaStorageSOPClassUID), str(meta.TransferSyntaxUID)


def store(
    port: int,
    items: list[Dataset | Path],
    *,
    calling_ae: str = "TESTSCU",
    called_ae: str = "ORTHOFUSE",
) -> list[tuple[int, str]]:
    """C-STORE each item (a data set, or a file sent as its raw bytes) on one association;
    returns ``[(status, error_comment)]`` in order. Raises when not accepted."""
    contexts = sorted({_context(item) for item in items})
    ae = AE(ae_title=calling_ae)
    for sop_class, syntax in contexts:
        ae.add_requested_context(sop_class, syntax)
    old = _config.STORE_SEND_CHUNKED_DATASET
    _config.STORE_SEND_CHUNKED_DATASET = True  # files go as they are, never re-encoded
    try:
        assoc = ae.associate(HOST, port, ae_title=called_ae)
        if not assoc.is_established:
            raise ConnectionError("association not accepted")
        out = []
        try:
            for item in items:
                status = assoc.send_c_store(item)
                if not status:
                    out.append((-1, "no response"))
                else:
                    out.append((int(status.Status), str(status.get("ErrorComment", ""))))
        finally:
            if assoc.is_established:
                assoc.release()
        return out
    finally:
        _config.STORE_SEND_CHUNKED_DATASET = old


def is_failure(status: int) -> bool:
    """A C-STORE failure status of the kinds the listener answers (0xA9xx or 0xCxxx)."""
    return 0xA900 <= status <= 0xA9FF or 0xC000 <= status <= 0xCFFF
