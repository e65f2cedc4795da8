"""The Django-free object builders on plain values: edge recovery, fusion, UIDs, refusals."""

from __future__ import annotations

import numpy as np
import pytest

from webapp.dicomnet.objects_common import PatientStudy, SourceImage, reference_dataset, stable_uid
from webapp.dicomnet.objects_sc import edges_from_overlay, fuse
from webapp.dicomnet.objects_sr import (
    DocumentIds,
    RegistrationValues,
    Trajectory,
    plan_report,
    pose_measurements,
    registration_report,
)

CONTEXT = PatientStudy(patient_id="P-1", study_instance_uid=stable_uid("study"))
IMAGE = SourceImage("1.2.840.10008.5.1.4.1.1.12.1", "1.2.3.4", "1.2.3.5",
                    CONTEXT.study_instance_uid)
IDS = DocumentIds(stable_uid("series"), stable_uid("instance"))


def test_edges_are_the_coloured_pixels_and_fusion_paints_them():
    grey = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    overlay = np.repeat(grey[..., None], 3, axis=2)
    overlay[1, 2] = [0, 255, 0]
    edges = edges_from_overlay(overlay)
    assert edges.sum() == 1 and edges[1, 2]
    rgb = fuse(grey, edges)
    assert rgb[1, 2].tolist() == [0, 255, 0] and rgb[0, 0].tolist() == [0, 0, 0]
    assert rgb[2, 3].tolist() == [220, 220, 220]
    with pytest.raises(ValueError, match="does not match the X-ray"):
        fuse(grey, np.zeros((4, 4), bool))
    with pytest.raises(ValueError, match="not an RGB picture"):
        edges_from_overlay(grey)


def test_stable_uids_depend_on_every_part():
    assert stable_uid("a", 1) == stable_uid("a", 1) != stable_uid("a", 2)
    assert len(stable_uid("a")) <= 64


def test_pose_is_translation_and_rotation_vector():
    T = np.eye(4)
    T[:3, :3] = [[0, -1, 0], [1, 0, 0], [0, 0, 1]]  # 90 deg about z
    T[:3, 3] = [1, 2, 3]
    values = [float(m[0].MeasuredValueSequence[0].NumericValue) for m in pose_measurements(T)]
    assert values == pytest.approx([1, 2, 3, 0, 0, 90])
    with pytest.raises(ValueError, match="no valid 4x4 pose"):
        pose_measurements(np.eye(3))


def test_reports_refuse_what_they_cannot_hold():
    evidence = [reference_dataset(CONTEXT, IMAGE)]
    with pytest.raises(ValueError, match="no complete trajectory"):
        plan_report("P", [], frame_of_reference_uid="1.2.3", evidence=evidence, ids=IDS)
    bad = Trajectory("T", (0, 0, 0), (np.nan, 0, 0), 5.0, 40.0, 40.0)
    with pytest.raises(ValueError, match="no valid entry and target"):
        plan_report("P", [bad], frame_of_reference_uid="1.2.3", evidence=evidence, ids=IDS)
    values = RegistrationValues(1, np.eye(4).tolist())
    with pytest.raises(ValueError, match="at least one source image"):
        registration_report(values, frame_of_reference_uid="1.2.3", evidence=[], ids=IDS)
    with pytest.raises(ValueError, match="no ID"):
        PatientStudy(patient_id=" ", study_instance_uid="1.2")
