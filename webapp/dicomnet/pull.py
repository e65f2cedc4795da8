"""Query/retrieve for a patient: search the configured PACS for the patient's CT series,
and pull one series (C-GET) into a temporary folder, then import it like an upload
(``import_ct_study``: same checks and refusals). Nothing of a failed pull is kept."""

from __future__ import annotations

import re
import tempfile
from collections.abc import Callable
from pathlib import Path

import pydicom
from django.conf import settings
from pydicom.errors import InvalidDicomError

from refusal import Refused
from webapp.dicomnet.dicomweb import qido_ct_series, wado_series
from webapp.dicomnet.move import c_move_series, wait_for_study
from webapp.dicomnet.pacs import Endpoint, PacsEndpoint, PacsError, WebEndpoint, pacs_endpoints
from webapp.dicomnet.query import RemoteSeries, find_ct_series
from webapp.dicomnet.retrieve import c_get_series
from webapp.records.ct_import import ImportRefused, import_ct_study
from webapp.records.models import CTStudy, Patient

PULL_JOB_KIND = "pull_ct_series"
UID_RE = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")


class PullRefused(Refused):
    """A search or pull cannot be done; the message says why (one line)."""


def configured_endpoint(name: str) -> Endpoint:
    """The configured endpoint written ``AE@host:port`` or its URL; only those may be used."""
    try:
        endpoints = pacs_endpoints()
    except ValueError as exc:
        raise PullRefused(str(exc)) from None
    for endpoint in endpoints:
        if str(endpoint) == name:
            return endpoint
    raise PullRefused(f"{name!r} is not a configured PACS (setting ORTHOFUSE_PACS)")


def find_series(endpoint: Endpoint, patient_id: str) -> list[RemoteSeries]:
    """QIDO-RS on a DICOMweb endpoint, C-FIND on a DIMSE one."""
    if isinstance(endpoint, WebEndpoint):
        return qido_ct_series(endpoint, patient_id)
    return find_ct_series(endpoint, patient_id)


def retrieve_series(endpoint: Endpoint, study_uid: str, series_uid: str, folder: Path,
                    **limits) -> int:
    """WADO-RS from a DICOMweb endpoint, C-GET from a DIMSE one."""
    if isinstance(endpoint, WebEndpoint):
        return wado_series(endpoint, study_uid, series_uid, folder, **limits)
    return c_get_series(endpoint, study_uid, series_uid, folder, **limits)


def search_patient(patient: Patient) -> list[dict]:
    """For each configured PACS: ``{"endpoint", "series": [RemoteSeries JSON], "error"}``."""
    try:
        endpoints = pacs_endpoints()
    except ValueError as exc:
        raise PullRefused(str(exc)) from None
    if not endpoints:
        raise PullRefused("no PACS is configured (setting ORTHOFUSE_PACS)")
    out = []
    for endpoint in endpoints:
        try:
            series = [s.to_json() for s in find_series(endpoint, patient.mrn)]
            out.append({"endpoint": str(endpoint), "series": series, "error": ""})
        except PacsError as exc:
            out.append({"endpoint": str(endpoint), "series": [], "error": str(exc)})
    return out


def retrieve_mode() -> str:
    """How a DIMSE PACS is pulled from: ``get`` (C-GET, default) or ``move`` (C-MOVE to our
    listener, which must be running and known to the PACS by our AE title)."""
    mode = str(getattr(settings, "ORTHOFUSE_PACS_RETRIEVE", "get")).strip().lower()
    if mode not in ("get", "move"):
        raise PullRefused(f"ORTHOFUSE_PACS_RETRIEVE={mode!r}: expected 'get' or 'move'")
    return mode


def _valid_uid(value: str, what: str) -> str:
    value = str(value or "").strip()
    if len(value) > 64 or not UID_RE.match(value):
        raise PullRefused(f"{what} {value!r} is not a valid DICOM UID")
    return value


def _check_patient(folder: Path, patient: Patient) -> None:
    for path in sorted(folder.glob("*.dcm")):
        try:
            found = str(pydicom.dcmread(path, stop_before_pixels=True).get("PatientID", ""))
        except (InvalidDicomError, OSError, ValueError):
            raise PullRefused(f"the PACS sent an unreadable file ({path.name})") from None
        if found.strip() != patient.mrn:
            raise PullRefused(f"the series belongs to patient ID {found!r}, not {patient.mrn!r}")


def pull_series(
    patient: Patient,
    endpoint_name: str,
    study_uid: str,
    series_uid: str,
    *,
    user=None,
    expected: int | None = None,
    report: Callable[[float, str], None] = lambda f, m: None,
) -> tuple[CTStudy, bool]:
    """Retrieve (C-GET, C-MOVE or WADO-RS) and import one CT series; returns ``(study, created)``:
    a series already imported for the patient is returned as it is. ``expected`` (the
    search's instance count) gives WADO-RS progress a total. Raises :class:`PullRefused`."""
    endpoint = configured_endpoint(endpoint_name)
    study_uid = _valid_uid(study_uid, "study UID")
    series_uid = _valid_uid(series_uid, "series UID")
    existing = CTStudy.objects.filter(patient=patient, series_instance_uid=series_uid,
                                      status=CTStudy.Status.READY).first()
    if existing is not None:
        return existing, False

    def progress(done: int, total: int | None) -> None:
        total = total or expected
        fraction = 0.85 * done / total if total else 0.0
        report(fraction, f"received {done}" + (f" of {total}" if total else "") + " images")

    if isinstance(endpoint, PacsEndpoint) and retrieve_mode() == "move":
        try:
            count = c_move_series(endpoint, study_uid, series_uid,
                                  str(settings.ORTHOFUSE_DICOM_AE_TITLE), report=progress)
            report(0.9, f"{count} images sent to our listener: waiting for the study")
            quiet = float(getattr(settings, "ORTHOFUSE_DICOM_QUIET_S", 10.0))
            return wait_for_study(patient, series_uid, timeout_s=3 * quiet + 60), True
        except PacsError as exc:
            raise PullRefused(str(exc)) from None
    staging = Path(settings.ORTHOFUSE_STAGING_DIR)
    staging.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="pacs-pull-", dir=staging) as tmp:
        folder = Path(tmp)
        try:
            count = retrieve_series(endpoint, study_uid, series_uid, folder,
                                    max_bytes=int(settings.ORTHOFUSE_MAX_UPLOAD_BYTES),
                                    report=progress)
        except PacsError as exc:
            raise PullRefused(str(exc)) from None
        _check_patient(folder, patient)
        report(0.9, f"importing {count} images")
        try:
            study = import_ct_study(folder, patient, user=user, series_uid=series_uid)
        except ImportRefused as exc:
            raise PullRefused(f"the series was refused: {exc.message}") from None
    return study, True


def submit_pull(patient: Patient, endpoint_name: str, study_uid: str, series_uid: str, *,
                expected: int | None = None, user=None, request=None):
    """Check the request, then queue the pull job."""
    from webapp.jobs.services import submit_job

    configured_endpoint(endpoint_name)
    params = {
        "patient_id": patient.pk,
        "endpoint": endpoint_name,
        "study_uid": _valid_uid(study_uid, "study UID"),
        "series_uid": _valid_uid(series_uid, "series UID"),
        "expected": expected if isinstance(expected, int) and 0 < expected < 100000 else None,
    }
    return submit_job(PULL_JOB_KIND, params=params, user=user, patient=patient, request=request)
