"""CT viewer endpoints: geometry JSON, raw int16 voxels, auditing and refusals."""

from __future__ import annotations

import io

import numpy as np
import pytest
from django.core.files.base import ContentFile
from django.urls import reverse

from tests.browser.volumes import affine_for, phantom_hu, save_study
from webapp.core.models import AuditEvent
from webapp.records.models import CTStudy
from webapp.records.viewer_views import VolumeUnavailable, volume_geometry

pytestmark = pytest.mark.django_db


def rotation_z(deg: float) -> np.ndarray:
    t = np.deg2rad(deg)
    return np.array([[np.cos(t), -np.sin(t), 0], [np.sin(t), np.cos(t), 0], [0, 0, 1.0]])


def test_geometry_of_an_oblique_affine():
    spacing = np.array([0.7, 0.9, 3.0])
    rot = rotation_z(30.0)
    affine = np.eye(4)
    affine[:3, :3] = rot * spacing
    affine[:3, 3] = [10.0, -20.0, 35.5]
    geometry = volume_geometry((5, 6, 7), affine)
    assert geometry["dimensions"] == [7, 6, 5]
    np.testing.assert_allclose(geometry["spacing"], spacing, atol=1e-12)
    direction = np.asarray(geometry["direction"]).reshape(3, 3)
    # Rows are the unit i, j, k axes in LPS (Cornerstone's layout).
    np.testing.assert_allclose(direction, rot.T, atol=1e-12)
    np.testing.assert_allclose(geometry["origin"], [10.0, -20.0, 35.5])
    # Rebuilding the affine from the parts gives the input back.
    rebuilt = np.eye(4)
    rebuilt[:3, :3] = direction.T * np.asarray(geometry["spacing"])
    rebuilt[:3, 3] = geometry["origin"]
    np.testing.assert_allclose(rebuilt, affine, atol=1e-12)


@pytest.mark.parametrize(
    "affine", [np.zeros((4, 4)), np.full((4, 4), np.nan), np.eye(3)], ids=["zero", "nan", "3x3"]
)
def test_geometry_refuses_a_bad_affine(affine):
    with pytest.raises(VolumeUnavailable):
        volume_geometry((2, 2, 2), affine)


def test_meta_describes_the_stored_volume(client, surgeon_a, patient_a):
    array = phantom_hu((6, 10, 12), seed=4)
    affine = affine_for((0.5, 0.6, 2.0), origin=(1.0, 2.0, 3.0))
    study = save_study(patient_a, array, affine)
    client.force_login(surgeon_a)
    response = client.get(reverse("records:study-volume-meta", args=[study.pk]))
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"] and "public" not in response["Cache-Control"]
    body = response.json()
    assert body["dimensions"] == [12, 10, 6]
    assert body["shape"] == [6, 10, 12]
    np.testing.assert_allclose(body["spacing"], [0.5, 0.6, 2.0])
    np.testing.assert_allclose(body["origin"], [1.0, 2.0, 3.0])
    np.testing.assert_allclose(body["affine"], affine)
    assert body["dtype"] == "<i2"
    assert body["data_bytes"] == array.size * 2
    assert body["hu_min"] == float(array.min())
    assert body["hu_max"] == float(array.max())
    assert body["study_id"] == study.pk


def test_voxels_are_the_stored_array_and_the_load_is_audited(client, surgeon_a, patient_a):
    array = phantom_hu((5, 8, 9), seed=5)
    study = save_study(patient_a, array, affine_for())
    client.force_login(surgeon_a)
    before = AuditEvent.objects.count()
    response = client.get(reverse("records:study-volume-data", args=[study.pk]))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/octet-stream"
    assert "no-store" in response["Cache-Control"] and "public" not in response["Cache-Control"]
    assert "Content-Disposition" not in response
    payload = b"".join(response.streaming_content)
    assert int(response["Content-Length"]) == len(payload) == array.size * 2
    served = np.frombuffer(payload, dtype="<i2").reshape(array.shape)
    np.testing.assert_array_equal(served, array)
    events = AuditEvent.objects.order_by("-id")[: AuditEvent.objects.count() - before]
    assert [event.action for event in events] == [AuditEvent.Action.DOWNLOAD]
    assert events[0].patient_mrn == patient_a.mrn
    assert events[0].object_type == "CTStudy" and events[0].object_id == str(study.pk)
    assert events[0].username == surgeon_a.username


@pytest.mark.parametrize("layout", ["float32", "fortran", "big-endian"])
def test_other_stored_layouts_are_converted(client, surgeon_a, patient_a, layout):
    array = phantom_hu((4, 6, 7), seed=6)
    if layout == "float32":
        stored = array.astype(np.float32) + 0.2
    elif layout == "fortran":
        stored = np.asfortranarray(array)
    else:
        stored = array.astype(">i2")
    study = save_study(patient_a, array, affine_for())
    buffer = io.BytesIO()
    np.save(buffer, stored, allow_pickle=False)
    study.volume_file.save("other.npy", ContentFile(buffer.getvalue()), save=True)
    client.force_login(surgeon_a)
    meta = client.get(reverse("records:study-volume-meta", args=[study.pk])).json()
    assert meta["dimensions"] == [7, 6, 4]
    response = client.get(reverse("records:study-volume-data", args=[study.pk]))
    assert response.status_code == 200
    payload = response.content
    served = np.frombuffer(payload, dtype="<i2").reshape(array.shape)
    np.testing.assert_array_equal(served, array)


def test_unreadable_volume_is_a_clear_refusal(client, surgeon_a, patient_a):
    study = save_study(patient_a, phantom_hu((3, 4, 5)), affine_for())
    study.volume_file.save("broken.npy", ContentFile(b"\x93NUMPY garbage"), save=True)
    client.force_login(surgeon_a)
    before = AuditEvent.objects.count()
    for name in ("records:study-volume-meta", "records:study-volume-data"):
        response = client.get(reverse(name, args=[study.pk]))
        assert response.status_code == 422
        detail = response.json()["detail"]
        assert "cannot be read" in detail and "\n" not in detail
    assert AuditEvent.objects.count() == before


def test_missing_volume_file_is_a_clear_refusal(client, surgeon_a, patient_a):
    study = save_study(patient_a, phantom_hu((3, 4, 5)), affine_for())
    study.volume_file.storage.delete(study.volume_file.name)
    client.force_login(surgeon_a)
    response = client.get(reverse("records:study-volume-data", args=[study.pk]))
    assert response.status_code == 422
    assert response.json()["detail"] == "the stored volume file is missing"


def test_study_without_a_ready_volume_is_not_found(client, surgeon_a, patient_a):
    study = save_study(patient_a, phantom_hu((3, 4, 5)), affine_for())
    CTStudy.objects.filter(pk=study.pk).update(status=CTStudy.Status.IMPORTING)
    client.force_login(surgeon_a)
    for name in ("records:study-volume-meta", "records:study-volume-data"):
        assert client.get(reverse(name, args=[study.pk])).status_code == 404


def test_only_get_is_allowed(client, surgeon_a, patient_a):
    study = save_study(patient_a, phantom_hu((3, 4, 5)), affine_for())
    client.force_login(surgeon_a)
    response = client.post(reverse("records:study-volume-data", args=[study.pk]))
    assert response.status_code == 405


def test_voxels_of_a_shape_other_than_recorded_are_refused(client, surgeon_a, patient_a):
    study = save_study(patient_a, phantom_hu((4, 6, 7)), affine_for())
    CTStudy.objects.filter(pk=study.pk).update(shape=[4, 7, 6])
    client.force_login(surgeon_a)
    before = AuditEvent.objects.count()
    response = client.get(reverse("records:study-volume-data", args=[study.pk]))
    assert response.status_code == 422
    assert response.json()["detail"] == (
        "the stored volume has shape [4, 6, 7] but the study records [4, 7, 6]"
    )
    assert AuditEvent.objects.count() == before
    # Local storage: the geometry comes from the file header, not the stale record.
    meta = client.get(reverse("records:study-volume-meta", args=[study.pk])).json()
    assert meta["dimensions"] == [7, 6, 4]


def test_remote_storage_meta_uses_the_record_without_reading_the_file(
    client, surgeon_a, patient_a, monkeypatch
):
    from webapp.records import viewer_views

    study = save_study(patient_a, phantom_hu((4, 6, 7)), affine_for())
    opened = []
    monkeypatch.setattr(viewer_views, "_is_local", lambda study: False)
    monkeypatch.setattr(
        viewer_views, "_open_raw_int16", lambda study: opened.append(study) or (None, None)
    )
    client.force_login(surgeon_a)
    meta = client.get(reverse("records:study-volume-meta", args=[study.pk])).json()
    assert meta["dimensions"] == [7, 6, 4]
    assert opened == []
