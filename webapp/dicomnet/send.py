"""Sending results to the PACS: which objects a registration or a plan version becomes,
starting the job, and sending them to every configured endpoint with retries and audit."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pydicom.dataset import Dataset

from webapp.core import audit
from webapp.dicomnet.dicomweb import stow
from webapp.dicomnet.pacs import Endpoint, PacsError, WebEndpoint, c_store, with_retries
from webapp.dicomnet.results import (
    ResultRefused,
    overlay_object,
    plan_object,
    registration_object,
)
from webapp.planning.models import PlanVersion
from webapp.xray_registration.models import Registration

JOB_KIND = "send_to_pacs"


def store(endpoint: Endpoint, datasets: list[Dataset]) -> None:
    """STOW-RS to a DICOMweb endpoint, C-STORE to a DIMSE one."""
    if isinstance(endpoint, WebEndpoint):
        stow(endpoint, datasets)
    else:
        c_store(endpoint, datasets)


@dataclass
class ResultSet:
    """The objects of one result, the row they came from and its patient."""

    row: Registration | PlanVersion
    patient: object
    datasets: list[Dataset]
    label: str


def result_set(*, registration_id: int | None = None, plan_version_id: int | None = None,
               ) -> ResultSet:
    """The DICOM objects of a registration (overlay SC + SR) or of a plan version (SR).
    Raises :class:`ResultRefused` with a one-line reason."""
    if (registration_id is None) == (plan_version_id is None):
        raise ResultRefused("name either a registration or a plan version")
    if registration_id is not None:
        reg = (Registration.objects.select_related("xray__patient", "study")
               .filter(pk=registration_id).first())
        if reg is None:
            raise ResultRefused(f"registration #{registration_id} does not exist")
        overlay = overlay_object(reg)
        return ResultSet(reg, reg.xray.patient, [overlay, registration_object(reg, overlay)],
                         f"registration #{reg.pk}")
    version = (PlanVersion.objects.select_related("plan__patient", "plan__xray1", "plan__xray2")
               .filter(pk=plan_version_id).first())
    if version is None:
        raise ResultRefused(f"plan version #{plan_version_id} does not exist")
    return ResultSet(version, version.plan.patient, [plan_object(version)],
                     f"plan {version.plan.name!r} v{version.number}")


def send_result_set(
    result: ResultSet,
    endpoints: list[Endpoint],
    *,
    user=None,
    report: Callable[[float, str], None] = lambda f, m: None,
    attempts: int = 3,
    delay_s: float = 2.0,
) -> dict:
    """Store ``result`` on each endpoint (``attempts`` tries each), auditing each
    outcome. Returns ``{"sent": [...], "failed": [...], "sop_instance_uids": [...]}``."""
    uids = [str(ds.SOPInstanceUID) for ds in result.datasets]
    sent, failed = [], []
    for k, endpoint in enumerate(endpoints):
        report(k / max(len(endpoints), 1), f"sending {result.label} to {endpoint}")
        try:
            used = with_retries(lambda e=endpoint: store(e, result.datasets),
                                attempts=attempts, delay_s=delay_s)
        except PacsError as exc:
            failed.append({"endpoint": str(endpoint), "reason": str(exc)})
            audit.record(None, "export", patient=result.patient, obj=result.row, user=user,
                         detail=f"DICOM send of {result.label} failed: {exc}")
            continue
        sent.append({"endpoint": str(endpoint), "attempts": used})
        audit.record(None, "export", patient=result.patient, obj=result.row, user=user,
                     detail=f"DICOM sent {result.label} to {endpoint}: {', '.join(uids)}")
    return {"sent": sent, "failed": failed, "sop_instance_uids": uids}


def submit_send(*, registration_id: int | None = None, plan_version_id: int | None = None,
                user=None, request=None):
    """Check that the result makes valid objects, then queue the send job."""
    from webapp.jobs.services import submit_job

    result = result_set(registration_id=registration_id, plan_version_id=plan_version_id)
    params = ({"registration_id": registration_id} if registration_id is not None
              else {"plan_version_id": plan_version_id})
    return submit_job(JOB_KIND, params=params, user=user, patient=result.patient,
                      request=request)
