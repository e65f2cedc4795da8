"""Registrations and plans as Comprehensive 3D SR documents (highdicom TID 1500 Measurement
Report), from plain values (no Django).

- A registration: one measurement group (TID 1501) with the pose ``T_cam_from_world``
  (translation mm and rotation vector deg, camera from CT LPS), the image similarity, the
  true mTRE when the X-ray is simulated, the inlier counts, referencing the X-ray; one
  planar ROI group (TID 1410) per landmark: its 3D point (SCOORD3D POINT in the CT's frame
  of reference) with its projected error.
- A plan: one planar ROI group per complete trajectory: entry -> target as a SCOORD3D
  POLYLINE in the CT's frame of reference, with planned length, diameter, measured length
  and anatomical angles.

Concepts without a standard code use the private scheme ``99OFUSE``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from scipy.spatial.transform import Rotation

from webapp.dicomnet.objects_common import MANUFACTURER, SourceImage, stable_uid

SCHEME = "99OFUSE"
FLUOROSCOPY = hd.sr.CodedConcept("44491008", "SCT", "Fluoroscopy")
MM = hd.sr.CodedConcept("mm", "UCUM", "millimeter")
DEG = hd.sr.CodedConcept("deg", "UCUM", "degree")
PX = hd.sr.CodedConcept("{pixels}", "UCUM", "pixels")
ONE = hd.sr.CodedConcept("1", "UCUM", "no units")
LENGTH = hd.sr.CodedConcept("410668003", "SCT", "Length")
DIAMETER = hd.sr.CodedConcept("81827009", "SCT", "Diameter")
SERIES_NUMBER = 9002


def concept(value: str, meaning: str) -> hd.sr.CodedConcept:
    return hd.sr.CodedConcept(value, SCHEME, meaning)


@dataclass(frozen=True)
class Landmark:
    u_px: float
    v_px: float
    xyz_mm: tuple[float, float, float]
    error_px: float | None = None
    error_mm_at_detector: float | None = None


@dataclass(frozen=True)
class RegistrationValues:
    """A successful registration: ``T_cam_from_world`` 4x4 (CT LPS mm -> camera mm)."""

    registration_id: int
    T_cam_from_world: Sequence[Sequence[float]]  # noqa: N815 - frame naming convention
    similarity: float | None = None
    true_mtre_mm: float | None = None
    n_inliers: int = 0
    n_correspondences: int = 0
    landmarks: Sequence[Landmark] = field(default_factory=tuple)


@dataclass(frozen=True)
class Trajectory:
    name: str
    entry_lps: tuple[float, float, float]
    target_lps: tuple[float, float, float]
    diameter_mm: float
    length_mm: float | None
    measured_length_mm: float
    angles_deg: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class DocumentIds:
    """Where the document goes: its series and SOP instance UIDs."""

    series_instance_uid: str
    sop_instance_uid: str


def _measurement(name: hd.sr.CodedConcept, value: float, unit: hd.sr.CodedConcept,
                 ) -> hd.sr.Measurement:
    return hd.sr.Measurement(name=name, value=float(value), unit=unit)


def _observation_context() -> hd.sr.ObservationContext:
    device = hd.sr.DeviceObserverIdentifyingAttributes(
        uid=stable_uid("device", MANUFACTURER), name=MANUFACTURER, manufacturer_name=MANUFACTURER
    )
    return hd.sr.ObservationContext(
        observer_device_context=hd.sr.ObserverContext(
            observer_type=codes.DCM.Device, observer_identifying_attributes=device
        )
    )


def _document(groups: list, evidence: Sequence[Dataset], ids: DocumentIds, title: str,
              ) -> hd.sr.Comprehensive3DSR:
    if not evidence:
        raise ValueError("an SR needs at least one source image to take its patient from")
    report = hd.sr.MeasurementReport(
        observation_context=_observation_context(),
        procedure_reported=FLUOROSCOPY,
        imaging_measurements=groups,
    )
    sr = hd.sr.Comprehensive3DSR(
        evidence=list(evidence),
        content=report[0],
        series_instance_uid=ids.series_instance_uid,
        series_number=SERIES_NUMBER,
        sop_instance_uid=ids.sop_instance_uid,
        instance_number=1,
        manufacturer=MANUFACTURER,
        is_complete=True,
        is_final=False,
    )
    sr.SeriesDescription = title[:64]
    scheme = Dataset()
    scheme.CodingSchemeDesignator = SCHEME
    scheme.CodingSchemeName = "OrthoFuse private concepts"
    scheme.CodingSchemeResponsibleOrganization = MANUFACTURER
    sr.CodingSchemeIdentificationSequence = [scheme]
    return sr


def _source_item(image: SourceImage) -> hd.sr.SourceImageForMeasurementGroup:
    return hd.sr.SourceImageForMeasurementGroup(image.sop_class_uid, image.sop_instance_uid)


def pose_measurements(T: Sequence[Sequence[float]]) -> list[hd.sr.Measurement]:
    """The pose as 3 translations (mm) and a rotation vector (deg) about camera x, y, z."""
    m = np.asarray(T, dtype=np.float64)
    if m.shape != (4, 4) or not np.all(np.isfinite(m)):
        raise ValueError("the registration has no valid 4x4 pose")
    rotvec = Rotation.from_matrix(m[:3, :3]).as_rotvec(degrees=True)
    out = []
    for k, axis in enumerate("xyz"):
        out.append(_measurement(concept(f"POSE-T{axis.upper()}",
                                        f"Pose translation {axis} (camera from CT)"), m[k, 3], MM))
    for k, axis in enumerate("xyz"):
        out.append(_measurement(concept(f"POSE-R{axis.upper()}",
                                        f"Pose rotation vector {axis} (camera from CT)"),
                                rotvec[k], DEG))
    return out


def registration_report(
    values: RegistrationValues,
    *,
    frame_of_reference_uid: str,
    evidence: Sequence[Dataset],
    ids: DocumentIds,
    xray: SourceImage | None = None,
) -> hd.sr.Comprehensive3DSR:
    """The SR of one successful registration (see the module docstring)."""
    measurements = pose_measurements(values.T_cam_from_world)
    if values.similarity is not None:
        measurements.append(_measurement(concept("REG-SIM", "Registration image similarity"),
                                         values.similarity, ONE))
    if values.true_mtre_mm is not None:
        measurements.append(_measurement(concept("REG-MTRE", "True mean target registration "
                                                 "error"), values.true_mtre_mm, MM))
    measurements.append(_measurement(concept("REG-INL", "Inlier correspondences"),
                                     values.n_inliers, ONE))
    measurements.append(_measurement(concept("REG-COR", "Correspondences"),
                                     values.n_correspondences, ONE))
    groups: list = [hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(
            uid=stable_uid("registration-group", ids.sop_instance_uid),
            identifier=f"2D/3D registration #{values.registration_id}",
        ),
        measurements=measurements,
        source_images=[_source_item(xray)] if xray is not None else None,
    )]
    for k, mark in enumerate(values.landmarks, 1):
        items = [
            _measurement(concept("LM-U", "Landmark image column"), mark.u_px, PX),
            _measurement(concept("LM-V", "Landmark image row"), mark.v_px, PX),
        ]
        if mark.error_px is not None:
            items.append(_measurement(concept("LM-EPX", "Landmark projected error"),
                                      mark.error_px, PX))
        if mark.error_mm_at_detector is not None:
            items.append(_measurement(concept("LM-EMM", "Landmark error at the detector"),
                                      mark.error_mm_at_detector, MM))
        groups.append(hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
            tracking_identifier=hd.sr.TrackingIdentifier(
                uid=stable_uid("landmark", ids.sop_instance_uid, k), identifier=f"Landmark {k}"
            ),
            referenced_region=hd.sr.ImageRegion3D(
                graphic_type=hd.sr.GraphicTypeValues3D.POINT,
                graphic_data=np.asarray([mark.xyz_mm], dtype=np.float64),
                frame_of_reference_uid=frame_of_reference_uid,
            ),
            measurements=items,
        ))
    return _document(groups, evidence, ids, f"OrthoFuse registration #{values.registration_id}")


ANGLE_NAMES = {
    "inclination_deg": "Inclination",
    "anteversion_deg": "Anteversion",
    "cranial_deg": "Cranial tilt",
    "axial_deg": "Axial angle",
}


def plan_report(
    plan_name: str,
    trajectories: Sequence[Trajectory],
    *,
    frame_of_reference_uid: str,
    evidence: Sequence[Dataset],
    ids: DocumentIds,
) -> hd.sr.Comprehensive3DSR:
    """The SR of a plan: each trajectory a SCOORD3D polyline entry -> target (CT LPS mm)."""
    if not trajectories:
        raise ValueError("the plan has no complete trajectory in the CT's frame")
    groups = []
    for t in trajectories:
        points = np.asarray([t.entry_lps, t.target_lps], dtype=np.float64)
        if points.shape != (2, 3) or not np.all(np.isfinite(points)):
            raise ValueError(f"trajectory {t.name!r} has no valid entry and target")
        items = [_measurement(DIAMETER, t.diameter_mm, MM),
                 _measurement(concept("TRJ-MLEN", "Measured trajectory length"),
                              t.measured_length_mm, MM)]
        if t.length_mm is not None:
            items.insert(0, _measurement(LENGTH, t.length_mm, MM))
        for key, label in ANGLE_NAMES.items():
            if t.angles_deg.get(key) is not None:
                items.append(_measurement(concept(f"TRJ-{key[:4].upper()}", label),
                                          t.angles_deg[key], DEG))
        groups.append(hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
            tracking_identifier=hd.sr.TrackingIdentifier(
                uid=stable_uid("trajectory", ids.sop_instance_uid, t.name),
                identifier=f"Trajectory {t.name}"[:64],
            ),
            referenced_region=hd.sr.ImageRegion3D(
                graphic_type=hd.sr.GraphicTypeValues3D.POLYLINE,
                graphic_data=points,
                frame_of_reference_uid=frame_of_reference_uid,
            ),
            measurements=items,
        ))
    return _document(groups, evidence, ids, f"OrthoFuse plan {plan_name}")
