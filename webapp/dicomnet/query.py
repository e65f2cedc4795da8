"""Searching a PACS for a patient's CT series (C-FIND, Study Root: studies of the patient,
then their CT series)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from pydicom.dataset import Dataset
from pynetdicom import AE
from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind

from webapp.dicomnet.pacs import TIMEOUT_S, PacsEndpoint, PacsError, calling_ae

PENDING = (0xFF00, 0xFF01)
CT_MODALITIES = ("CT",)


@dataclass(frozen=True)
class RemoteSeries:
    """A CT series on a PACS, as its C-FIND answers describe it."""

    study_instance_uid: str
    series_instance_uid: str
    study_date: str = ""
    study_description: str = ""
    series_description: str = ""
    series_number: str = ""
    modality: str = ""
    instances: int | None = None

    def to_json(self) -> dict:
        return asdict(self)


def _find(assoc, query: Dataset, endpoint: PacsEndpoint) -> list[Dataset]:
    answers = []
    for status, identifier in assoc.send_c_find(query, StudyRootQueryRetrieveInformationModelFind):
        if not status:
            raise PacsError(f"{endpoint}: no answer to C-FIND")
        code = int(status.Status)
        if code in PENDING and identifier is not None:
            answers.append(identifier)
        elif code != 0x0000 and code not in PENDING:
            raise PacsError(f"{endpoint}: C-FIND failed with status 0x{code:04X}")
    return answers


def _text(ds: Dataset, keyword: str) -> str:
    return str(ds.get(keyword, "") or "").strip()


def _count(ds: Dataset) -> int | None:
    try:
        return int(ds.get("NumberOfSeriesRelatedInstances"))
    except (TypeError, ValueError):
        return None


def find_ct_series(endpoint: PacsEndpoint, patient_id: str) -> list[RemoteSeries]:
    """The CT series of patient ``patient_id`` (exact match) on ``endpoint``, newest study
    first. Raises :class:`PacsError`."""
    if not patient_id.strip() or any(c in patient_id for c in "*?\\"):
        raise PacsError(f"cannot search for patient ID {patient_id!r}")
    ae = AE(ae_title=calling_ae())
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = TIMEOUT_S
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelFind)
    assoc = ae.associate(endpoint.host, endpoint.port, ae_title=endpoint.ae_title)
    if not assoc.is_established:
        raise PacsError(f"{endpoint}: association refused or no answer")
    found = []
    try:
        study_query = Dataset()
        study_query.QueryRetrieveLevel = "STUDY"
        study_query.PatientID = patient_id
        study_query.StudyInstanceUID = ""
        study_query.StudyDate = ""
        study_query.StudyDescription = ""
        for study in _find(assoc, study_query, endpoint):
            if _text(study, "PatientID") not in ("", patient_id):
                continue  # a PACS that matched loosely
            series_query = Dataset()
            series_query.QueryRetrieveLevel = "SERIES"
            series_query.StudyInstanceUID = _text(study, "StudyInstanceUID")
            series_query.SeriesInstanceUID = ""
            series_query.Modality = ""
            series_query.SeriesDescription = ""
            series_query.SeriesNumber = ""
            series_query.NumberOfSeriesRelatedInstances = ""
            for series in _find(assoc, series_query, endpoint):
                if _text(series, "Modality") not in CT_MODALITIES:
                    continue
                found.append(RemoteSeries(
                    study_instance_uid=_text(study, "StudyInstanceUID"),
                    series_instance_uid=_text(series, "SeriesInstanceUID"),
                    study_date=_text(study, "StudyDate"),
                    study_description=_text(study, "StudyDescription"),
                    series_description=_text(series, "SeriesDescription"),
                    series_number=_text(series, "SeriesNumber"),
                    modality=_text(series, "Modality"),
                    instances=_count(series),
                ))
    finally:
        if assoc.is_established:
            assoc.release()
    return sorted(found, key=lambda s: (s.study_date, s.series_number), reverse=True)
