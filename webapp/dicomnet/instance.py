"""Parsing one received instance and deciding what it is (an X-ray or a CT slice).

``parse_instance(raw)`` decodes the bytes pynetdicom received (preamble + file meta + data
set) and checks the identifiers every stored object needs; ``kind_of(ds)`` answers "xray"
or "ct" from the SOP class and Modality, or refuses anything else.
"""

from __future__ import annotations

import io
import logging
import re
import warnings

import pydicom
from pydicom.dataset import Dataset

from dicomio.errors import reraise_if_fatal
from webapp.dicomnet.status import DOES_NOT_MATCH, IDENTIFIERS, MALFORMED, UNSUPPORTED, StoreRefused

logger = logging.getLogger(__name__)

CT_SOP_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.2": "CT Image",
    "1.2.840.10008.5.1.4.1.1.2.1": "Enhanced CT Image",
    "1.2.840.10008.5.1.4.1.1.2.2": "Legacy Converted Enhanced CT Image",
}
XRAY_SOP_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.12.1": "X-Ray Angiographic Image",
    "1.2.840.10008.5.1.4.1.1.12.1.1": "Enhanced XA Image",
    "1.2.840.10008.5.1.4.1.1.12.2": "X-Ray Radiofluoroscopic Image",
    "1.2.840.10008.5.1.4.1.1.12.2.1": "Enhanced XRF Image",
    "1.2.840.10008.5.1.4.1.1.1": "Computed Radiography Image",
    "1.2.840.10008.5.1.4.1.1.1.1": "Digital X-Ray Image (For Presentation)",
    "1.2.840.10008.5.1.4.1.1.1.1.1": "Digital X-Ray Image (For Processing)",
}
XRAY_MODALITIES = {"XA", "RF", "DX", "CR"}
_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")
MAX_MRN = 64


def text(ds: Dataset, keyword: str) -> str:
    """A header value as stripped text ('' when absent or unreadable)."""
    try:
        value = ds.get(keyword)
    except Exception:  # noqa: BLE001 - a damaged element reads as absent
        return ""
    if value is None:
        return ""
    return str(value).strip().replace("\x00", "")


def checked_uid(ds: Dataset, keyword: str) -> str:
    """A UID from the header, refused when missing or not a valid UID (digits and dots)."""
    uid = text(ds, keyword)
    if not uid:
        raise StoreRefused(IDENTIFIERS, f"{keyword} is missing")
    if len(uid) > 64 or not _UID.match(uid):
        raise StoreRefused(IDENTIFIERS, f"{keyword} {uid[:40]!r} is not a valid UID")
    return uid


def parse_instance(raw: bytes, sop_class_uid: str = "", sop_instance_uid: str = "") -> Dataset:
    """Decode a received instance (every element, so damage shows here, not later) and check
    it names the SOP class of its C-STORE request (when given)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            ds = pydicom.dcmread(io.BytesIO(raw), force=True)
            for _elem in ds:
                pass
        except BaseException as exc:  # noqa: BLE001 - any parser failure is a refusal
            reraise_if_fatal(exc)
            raise StoreRefused(MALFORMED, f"malformed data set ({type(exc).__name__})") from None
    found_class, found_instance = text(ds, "SOPClassUID"), text(ds, "SOPInstanceUID")
    if not found_class or not found_instance:
        raise StoreRefused(MALFORMED, "malformed data set: no SOP Class UID or SOP Instance UID")
    if sop_class_uid and found_class != sop_class_uid:
        raise StoreRefused(DOES_NOT_MATCH, "SOP Class UID differs from the C-STORE request's")
    if sop_instance_uid and found_instance != sop_instance_uid:
        # seen in real files (file meta left stale by anonymisers): the data set's UID wins
        logger.info("C-STORE for %s carries SOP Instance UID %s", sop_instance_uid, found_instance)
    return ds


def kind_of(ds: Dataset, sop_class_uid: str = "") -> str:
    """``"xray"`` or ``"ct"``; refuses other SOP classes and mismatched modalities."""
    sop_class = text(ds, "SOPClassUID") or sop_class_uid
    modality = text(ds, "Modality").upper()
    if sop_class in XRAY_SOP_CLASSES:
        if modality not in XRAY_MODALITIES:
            raise StoreRefused(
                DOES_NOT_MATCH,
                f"{XRAY_SOP_CLASSES[sop_class]} with modality {modality or 'missing'}",
            )
        return "xray"
    if sop_class in CT_SOP_CLASSES:
        if modality not in ("CT", ""):
            raise StoreRefused(DOES_NOT_MATCH, f"{CT_SOP_CLASSES[sop_class]} with modality {modality}")
        return "ct"
    what = pydicom.uid.UID(sop_class).name if sop_class else "no SOP class"
    raise StoreRefused(
        UNSUPPORTED,
        f"unsupported object: {what} ({modality or 'no modality'}); XA, RF, DX, CR or CT only",
    )


def patient_id(ds: Dataset) -> str:
    """The MRN (PatientID), refused when missing or longer than the records allow."""
    mrn = text(ds, "PatientID")
    if not mrn:
        raise StoreRefused(IDENTIFIERS, "PatientID is missing: the instance cannot be filed")
    if len(mrn) > MAX_MRN or not mrn.isprintable():
        raise StoreRefused(IDENTIFIERS, f"PatientID {mrn[:20]!r}... is not a valid MRN")
    return mrn
