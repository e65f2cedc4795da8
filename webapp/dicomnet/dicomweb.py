"""DICOMweb (dicomweb-client) for a PACS given by URL: STOW-RS to store results, QIDO-RS to
find a patient's CT series, WADO-RS to retrieve one series into a folder. Errors become
:class:`PacsError` with one line."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import requests
from dicomweb_client.api import DICOMwebClient
from pydicom.dataset import Dataset

from webapp.dicomnet.pacs import TIMEOUT_S, PacsError, WebEndpoint
from webapp.dicomnet.query import CT_MODALITIES, RemoteSeries


def _client(endpoint: WebEndpoint) -> DICOMwebClient:
    return DICOMwebClient(url=endpoint.url, timeout=TIMEOUT_S)


def _failure(endpoint: WebEndpoint, what: str, exc: Exception) -> PacsError:
    response = getattr(exc, "response", None)
    code = f" (HTTP {response.status_code})" if response is not None else ""
    return PacsError(f"{endpoint}: {what} failed{code}: {type(exc).__name__}")


def stow(endpoint: WebEndpoint, datasets: Sequence[Dataset]) -> None:
    """STOW-RS ``datasets``; PacsError when any is not stored."""
    try:
        answer = _client(endpoint).store_instances(list(datasets))
    except (requests.RequestException, ValueError, OSError) as exc:
        raise _failure(endpoint, "STOW-RS", exc) from None
    failed = answer.get("FailedSOPSequence") if answer is not None else None
    if failed:
        reasons = sorted({str(item.get("FailureReason", "?")) for item in failed})
        raise PacsError(f"{endpoint}: STOW-RS refused {len(failed)} instance(s) "
                        f"(reason {', '.join(reasons)})")


def _json_text(item: dict, tag: str) -> str:
    values = (item.get(tag) or {}).get("Value") or [""]
    return str(values[0]).strip()


def qido_ct_series(endpoint: WebEndpoint, patient_id: str) -> list[RemoteSeries]:
    """The CT series of patient ``patient_id`` (exact match), newest study first."""
    client = _client(endpoint)
    found = []
    try:
        studies = client.search_for_studies(search_filters={"PatientID": patient_id},
                                            get_remaining=True)
        for study in studies:
            if _json_text(study, "00100020") not in ("", patient_id):
                continue
            study_uid = _json_text(study, "0020000D")
            series_list = client.search_for_series(
                study_uid, search_filters={"Modality": "CT"}, get_remaining=True,
                fields=["SeriesDescription", "SeriesNumber", "NumberOfSeriesRelatedInstances"])
            for series in series_list:
                if _json_text(series, "00080060") not in CT_MODALITIES:
                    continue
                count = _json_text(series, "00201209")
                found.append(RemoteSeries(
                    study_instance_uid=study_uid,
                    series_instance_uid=_json_text(series, "0020000E"),
                    study_date=_json_text(study, "00080020"),
                    study_description=_json_text(study, "00081030"),
                    series_description=_json_text(series, "0008103E"),
                    series_number=_json_text(series, "00200011"),
                    modality=_json_text(series, "00080060"),
                    instances=int(count) if count.isdigit() else None,
                ))
    except (requests.RequestException, ValueError, OSError) as exc:
        raise _failure(endpoint, "QIDO-RS", exc) from None
    return sorted(found, key=lambda s: (s.study_date, s.series_number), reverse=True)


def wado_series(
    endpoint: WebEndpoint,
    study_uid: str,
    series_uid: str,
    folder: Path,
    *,
    max_instances: int = 5000,
    max_bytes: int = 2 * 1024**3,
    report: Callable[[int, int | None], None] = lambda done, total: None,
) -> int:
    """WADO-RS every instance of the series into ``folder``; returns the count. Raises
    PacsError (the folder may then hold part of the series: the caller discards it)."""
    folder.mkdir(parents=True, exist_ok=True)
    count = size = 0
    try:
        for ds in _client(endpoint).iter_series(study_uid, series_uid):
            if str(ds.get("SeriesInstanceUID", "")) != series_uid:
                raise PacsError(f"{endpoint}: WADO-RS sent an instance of another series")
            path = folder / f"{count:05d}.dcm"
            ds.save_as(path, enforce_file_format=True)
            count += 1
            size += path.stat().st_size
            if count > max_instances or size > max_bytes:
                raise PacsError(f"{endpoint}: the series is larger than the limit "
                                f"({max_instances} instances, {max_bytes // 1024**2} MiB)")
            report(count, None)
    except (requests.RequestException, ValueError, OSError) as exc:
        if isinstance(exc, requests.HTTPError) and exc.response is not None \
                and exc.response.status_code == 404:
            raise PacsError(f"{endpoint}: the series {series_uid} has no CT instance there") \
                from None
        raise _failure(endpoint, "WADO-RS", exc) from None
    if count == 0:
        raise PacsError(f"{endpoint}: the series {series_uid} has no CT instance there")
    return count
