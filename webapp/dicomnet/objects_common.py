"""Plain values shared by the objects we send to the PACS (no Django): who and which study
an object belongs to, the images it was made from, and stable UIDs.

A result sent twice must be the same DICOM instance (a PACS then keeps one copy), so its
UIDs come from :func:`stable_uid` over what identifies the result (kind, row id, creation
time, content digest), never from a random source.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

MANUFACTURER = "OrthoFuse"
SEX_CODES = ("M", "F", "O")


@dataclass(frozen=True)
class PatientStudy:
    """The patient and study modules of an object (DICOM strings: dates YYYYMMDD)."""

    patient_id: str
    patient_name: str = ""
    birth_date: str = ""
    sex: str = ""
    study_instance_uid: str = ""
    study_date: str = ""
    study_time: str = ""
    study_id: str = ""
    accession_number: str = ""
    referring_physician: str = ""

    def __post_init__(self) -> None:
        if not self.patient_id.strip():
            raise ValueError("the patient has no ID (MRN)")
        if not self.study_instance_uid:
            raise ValueError("the study has no Study Instance UID")


@dataclass(frozen=True)
class SourceImage:
    """An image a result was made from, by its UIDs."""

    sop_class_uid: str
    sop_instance_uid: str
    series_instance_uid: str
    study_instance_uid: str


def stable_uid(*parts: Any) -> str:
    """A UID (pydicom's root) that is the same for the same ``parts``."""
    return generate_uid(entropy_srcs=["orthofuse", *(str(p) for p in parts)])


def digest(value: Any) -> str:
    """A short digest of JSON-able ``value`` (for :func:`stable_uid`)."""
    text = json.dumps(value, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def dicom_date(value: dt.date | None) -> str:
    return value.strftime("%Y%m%d") if value else ""


def patient_study_from_header(header: Dataset) -> PatientStudy:
    """The patient and study of a received image's header."""

    def text(keyword: str) -> str:
        return str(header.get(keyword, "") or "").strip()

    sex = text("PatientSex").upper()
    return PatientStudy(
        patient_id=text("PatientID"),
        patient_name=text("PatientName"),
        birth_date=text("PatientBirthDate")[:8],
        sex=sex if sex in SEX_CODES else "",
        study_instance_uid=text("StudyInstanceUID"),
        study_date=text("StudyDate")[:8],
        study_time=text("StudyTime"),
        study_id=text("StudyID")[:16],
        accession_number=text("AccessionNumber")[:16],
        referring_physician=text("ReferringPhysicianName"),
    )


def reference_dataset(context: PatientStudy, image: SourceImage) -> Dataset:
    """A header-only data set of ``image`` (patient, study, series and SOP UIDs): what the
    SR builders need as evidence."""
    ds = Dataset()
    ds.PatientID = context.patient_id
    ds.PatientName = context.patient_name
    ds.PatientBirthDate = context.birth_date
    ds.PatientSex = context.sex
    ds.StudyInstanceUID = image.study_instance_uid
    ds.StudyDate = context.study_date
    ds.StudyTime = context.study_time
    ds.StudyID = context.study_id
    ds.AccessionNumber = context.accession_number
    ds.ReferringPhysicianName = context.referring_physician
    ds.SeriesInstanceUID = image.series_instance_uid
    ds.SOPClassUID = image.sop_class_uid
    ds.SOPInstanceUID = image.sop_instance_uid
    return ds
