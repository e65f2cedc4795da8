"""DICOM objects for a registration or a plan, from their rows (Django side of
``objects_sc`` / ``objects_sr``).

An X-ray received or uploaded as DICOM gives its patient and study (read from the stored
file's header) and is referenced by its SOP Instance UID; an X-ray imported as PNG gives
the Patient row and a new study (a stable UID per X-ray). Object UIDs are stable per
result (see ``objects_common``), so sending again stores the same instances.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from refusal import Refused
from webapp.dicomnet.objects_common import (
    PatientStudy,
    SourceImage,
    dicom_date,
    digest,
    patient_study_from_header,
    reference_dataset,
    stable_uid,
)
from webapp.dicomnet.objects_sc import edges_from_overlay, fuse, overlay_secondary_capture
from webapp.dicomnet.objects_sr import (
    DocumentIds,
    Landmark,
    RegistrationValues,
    Trajectory,
    plan_report,
    registration_report,
)
from webapp.planning.models import PlanVersion
from webapp.records.models import CTStudy, Patient, XrayImage
from webapp.xray_registration.models import Registration
from webapp.xray_view import XrayUnavailable, display_uint8, read_view


class ResultRefused(Refused):
    """A result cannot become a DICOM object; the message says why (one line)."""


@dataclass(frozen=True)
class XraySource:
    context: PatientStudy
    image: SourceImage | None  # None for an X-ray imported as PNG
    orientation: tuple[str, str] | None


def patient_context(patient: Patient, study_uid: str, when=None, study_id: str = "",
                    ) -> PatientStudy:
    """The patient module from the Patient row, in new study ``study_uid`` dated ``when``."""
    name = "^".join(p for p in (patient.family_name, patient.given_name) if p)
    return PatientStudy(
        study_date=when.strftime("%Y%m%d") if when else "",
        study_time=when.strftime("%H%M%S") if when else "",
        study_id=study_id[:16],
        patient_id=patient.mrn,
        patient_name=name,
        birth_date=dicom_date(patient.birth_date),
        sex=patient.sex if patient.sex in ("M", "F", "O") else "",
        study_instance_uid=study_uid,
    )


def xray_source(xray: XrayImage) -> XraySource:
    """Patient, study and reference of ``xray`` (see the module docstring)."""
    if xray.file_format == XrayImage.Format.DICOM and xray.sop_instance_uid:
        try:
            with xray.original_file.open("rb") as handle:
                header = pydicom.dcmread(handle, stop_before_pixels=True)
        except (OSError, InvalidDicomError, ValueError) as exc:
            raise ResultRefused(f"X-ray #{xray.pk}: its DICOM header cannot be read "
                                f"({type(exc).__name__})") from None
        try:
            context = patient_study_from_header(header)
        except ValueError as exc:
            raise ResultRefused(f"X-ray #{xray.pk}: {exc}") from None
        image = SourceImage(
            sop_class_uid=str(header.get("SOPClassUID", "")),
            sop_instance_uid=xray.sop_instance_uid,
            series_instance_uid=str(header.get("SeriesInstanceUID", "")),
            study_instance_uid=context.study_instance_uid,
        )
        orientation = header.get("PatientOrientation")
        orientation = tuple(orientation) if orientation and len(orientation) == 2 else None
        return XraySource(context, image, orientation)
    study_uid = stable_uid("png-study", xray.pk, xray.created_at.isoformat())
    when = xray.acquired_at or xray.created_at
    context = patient_context(xray.patient, study_uid, when, f"OF-X{xray.pk}")
    return XraySource(context, None, None)


def ct_frame_of_reference(study: CTStudy) -> str:
    """The CT's FrameOfReferenceUID when its import kept it, else a stable new one."""
    stored = str((study.provenance or {}).get("frame_of_reference_uid") or "")
    return stored or stable_uid("ct-frame", study.pk, study.created_at.isoformat(),
                                study.series_instance_uid)


def _ids(*parts) -> DocumentIds:
    return DocumentIds(stable_uid("series", *parts), stable_uid("instance", *parts))


def _successful(reg: Registration) -> None:
    if reg.status != Registration.Status.OK or not reg.T_cam_from_world:
        raise ResultRefused(f"registration #{reg.pk} did not succeed: nothing to send")
    if reg.review_status == Registration.Review.REJECTED:
        raise ResultRefused(f"registration #{reg.pk} was rejected in review: not sent")


def overlay_object(reg: Registration) -> Dataset:
    """The fused overlay of a successful registration as a Secondary Capture."""
    _successful(reg)
    if not reg.overlay_file:
        raise ResultRefused(f"registration #{reg.pk} has no overlay picture")
    try:
        view = read_view(reg.xray)
        grey = display_uint8(view.pixels, view.photometric)
        with reg.overlay_file.open("rb") as handle:
            picture = cv2.imdecode(np.frombuffer(handle.read(), np.uint8), cv2.IMREAD_COLOR)
    except XrayUnavailable as exc:
        raise ResultRefused(str(exc)) from None
    except OSError as exc:
        raise ResultRefused(f"the overlay file is missing ({type(exc).__name__})") from None
    if picture is None:
        raise ResultRefused(f"registration #{reg.pk}: the overlay picture cannot be read")
    try:
        rgb = fuse(grey, edges_from_overlay(picture[..., ::-1]))
    except ValueError as exc:
        raise ResultRefused(f"registration #{reg.pk}: {exc}") from None
    source = xray_source(reg.xray)
    spacing = None
    if reg.xray.pixel_spacing_x_mm and reg.xray.pixel_spacing_y_mm and not view.dewarped:
        spacing = (float(reg.xray.pixel_spacing_y_mm), float(reg.xray.pixel_spacing_x_mm))
    ids = _ids("overlay", reg.pk, reg.created_at.isoformat(), digest(reg.T_cam_from_world))
    return overlay_secondary_capture(
        rgb, source.context, series_instance_uid=ids.series_instance_uid,
        sop_instance_uid=ids.sop_instance_uid, source=source.image,
        pixel_spacing_mm=spacing, patient_orientation=source.orientation,
    )


def registration_object(reg: Registration, overlay: Dataset | None = None) -> Dataset:
    """The SR of a successful registration; evidence is the X-ray (DICOM) or ``overlay``
    (the Secondary Capture, for an X-ray imported as PNG)."""
    _successful(reg)
    source = xray_source(reg.xray)
    evidence = []
    if source.image is not None:
        evidence.append(reference_dataset(source.context, source.image))
    elif overlay is not None:
        evidence.append(overlay)
    else:
        raise ResultRefused(f"registration #{reg.pk}: an X-ray imported as PNG needs its "
                            "overlay sent with the report")
    marks = [
        Landmark(m.u_px, m.v_px, (m.x_mm, m.y_mm, m.z_mm), m.error_px, m.error_mm_at_detector)
        for m in reg.landmarks.order_by("pk")
    ]
    values = RegistrationValues(
        registration_id=reg.pk,
        T_cam_from_world=reg.T_cam_from_world,
        similarity=reg.similarity,
        true_mtre_mm=(reg.quality or {}).get("true_mtre_mm"),
        n_inliers=reg.n_inliers,
        n_correspondences=reg.n_correspondences,
        landmarks=marks,
    )
    ids = _ids("registration", reg.pk, reg.created_at.isoformat(),
               digest([reg.T_cam_from_world, [m.xyz_mm for m in marks]]))
    try:
        return registration_report(values, frame_of_reference_uid=ct_frame_of_reference(reg.study),
                                   evidence=evidence, ids=ids, xray=source.image)
    except ValueError as exc:
        raise ResultRefused(f"registration #{reg.pk}: {exc}") from None


def _trajectory(row: dict) -> Trajectory:
    ct = row.get("ct") or {}
    return Trajectory(
        name=str(row["name"]),
        entry_lps=tuple(ct["entry_lps"]),
        target_lps=tuple(ct["target_lps"]),
        diameter_mm=float(row.get("diameter_mm") or 0.0),
        length_mm=row.get("length_mm"),
        measured_length_mm=float(row.get("measured_length_mm") or 0.0),
        angles_deg=dict(row.get("anatomical") or {}),
    )


def plan_object(version: PlanVersion) -> Dataset:
    """The SR of one plan version (trajectories in the CT's frame of reference)."""
    snapshot = version.snapshot or {}
    label = f"plan {version.plan.name!r} v{version.number}"
    if snapshot.get("world_frame") != "ct":
        raise ResultRefused(f"{label} is not in the CT's frame: register both views first")
    study = CTStudy.objects.filter(pk=snapshot.get("study_id")).first()
    if study is None:
        raise ResultRefused(f"{label}: its CT study no longer exists")
    rows = [t for t in snapshot.get("trajectories", []) if t.get("complete") and t.get("ct")]
    if not rows:
        raise ResultRefused(f"{label} has no complete trajectory")
    evidence = []
    for xray in (version.plan.xray1, version.plan.xray2):
        source = xray_source(xray)
        if source.image is not None:
            evidence.append(reference_dataset(source.context, source.image))
    if not evidence:
        raise ResultRefused(f"{label}: neither view came as DICOM, so there is no study to "
                            "file the report in")
    ids = _ids("plan", version.pk, version.created_at.isoformat())
    try:
        return plan_report(version.plan.name, [_trajectory(t) for t in rows],
                           frame_of_reference_uid=ct_frame_of_reference(study),
                           evidence=evidence, ids=ids)
    except (ValueError, KeyError, TypeError) as exc:
        raise ResultRefused(f"{label}: {exc}") from None
