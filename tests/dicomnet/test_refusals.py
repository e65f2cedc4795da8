"""StoreRefused instances: a failure status with the reason in Error Comment, nothing stored,
audited; the listener keeps receiving, also after a peer drops the association."""

from __future__ import annotations

import socket
import struct

import numpy as np
import pytest
from pydicom.dataset import FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_file_meta_info
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, MRImageStorage, generate_uid

from tests.dicomio.synth import ct_slice, xray_dataset
from tests.dicomnet.scu import echo, is_failure, store
from webapp.core.models import AuditEvent
from webapp.records.models import CArm, Patient, XrayImage


def _nothing_stored(node) -> None:
    assert Patient.objects.count() == 0
    assert XrayImage.objects.count() == 0
    assert CArm.objects.count() == 0
    assert node.receiver.stager.pending() == {}


def _xray(seed: int = 0):
    ds = xray_dataset(np.random.default_rng(seed).integers(0, 4000, (16, 16)).astype(np.uint16))
    ds.PatientID = "R-1"
    return ds


BODIES = {
    # pydicom reads these leniently or not at all; neither is a data set naming its SOP
    "random bytes": np.random.default_rng(0).integers(0, 256, 300, dtype=np.uint8).tobytes(),
    "unterminated sequence": struct.pack("<HH2sHI", 0x0008, 0x1140, b"SQ", 0, 0xFFFFFFFF)
    + struct.pack("<HHI", 0xFFFE, 0xE000, 0xFFFFFFFF)
    + struct.pack("<HH2sH", 0x0008, 0x0016, b"UI", 10) + b"1.2.3",
}


def _malformed_file(tmp_path, body: bytes):
    """Valid file meta (CT Image Storage), then a damaged data set."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    buf = DicomBytesIO()
    buf.is_little_endian, buf.is_implicit_VR = True, False
    write_file_meta_info(buf, meta, enforce_standard=True)
    path = tmp_path / "bad.dcm"
    path.write_bytes(b"\0" * 128 + b"DICM" + buf.getvalue() + body)
    return path


@pytest.mark.parametrize("name", sorted(BODIES))
def test_malformed_instance_gets_a_failure_with_a_comment(node, tmp_path, name):
    [(status, comment)] = store(node.port, [_malformed_file(tmp_path, BODIES[name])])
    assert status == 0xC000 and "malformed" in comment
    _nothing_stored(node)
    event = AuditEvent.objects.get(action="dicom_refused")
    assert "malformed" in event.detail and "TESTSCU" in event.detail


def test_unsupported_sop_class_is_refused(node):
    ds = ct_slice(np.zeros((8, 8), np.int16), position=(0, 0, 0), series_uid=generate_uid(),
                  study_uid=generate_uid(), modality="MR")
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = MRImageStorage
    [(status, comment)] = store(node.port, [ds])
    assert status == 0xC001 and "unsupported object" in comment and len(comment) <= 64
    _nothing_stored(node)


def test_sop_class_and_modality_that_disagree_are_refused(node):
    ds = ct_slice(np.zeros((8, 8), np.int16), position=(0, 0, 0), series_uid=generate_uid(),
                  study_uid=generate_uid(), modality="MR")
    [(status, comment)] = store(node.port, [ds])
    assert status == 0xA900 and "modality MR" in comment
    _nothing_stored(node)


def test_pixel_bomb_is_refused(node):
    ds = _xray(1)
    ds.Rows = ds.Columns = 60000  # the header claims 3.6 G pixels, the payload holds 256
    [(status, comment)] = store(node.port, [ds])
    assert status == 0xC002 and comment
    ct = ct_slice(np.zeros((8, 8), np.int16), position=(0, 0, 0), series_uid=generate_uid(),
                  study_uid=generate_uid())
    ct.NumberOfFrames = 100000
    [(status, comment)] = store(node.port, [ct])
    assert status == 0xC002
    _nothing_stored(node)


def test_refusal_audit_names_the_patient(node, patient_a):
    ds = _xray(9)
    ds.PatientID = patient_a.mrn
    ds.PhotometricInterpretation = "RGB"
    assert store(node.port, [ds])[0][0] == 0xC003
    event = AuditEvent.objects.get(action="dicom_refused")
    assert (event.patient_id_ref, event.patient_mrn) == (patient_a.pk, patient_a.mrn)
    assert XrayImage.objects.count() == 0


def test_missing_patient_id_and_colour_xray_are_refused(node):
    no_id = _xray(2)
    del no_id.PatientID
    colour = _xray(3)
    colour.PhotometricInterpretation = "RGB"
    statuses = store(node.port, [no_id, colour])
    assert statuses[0][0] == 0xC004 and "PatientID" in statuses[0][1]
    assert statuses[1][0] == 0xC003 and "photometric" in statuses[1][1]
    _nothing_stored(node)
    assert AuditEvent.objects.filter(action="dicom_refused").count() == 2


def test_receiving_continues_after_a_bad_instance_on_the_same_association(node, tmp_path):
    bad = _xray(4)
    bad.Rows = 60000
    statuses = store(node.port, [bad, _xray(5)])
    assert is_failure(statuses[0][0]) and statuses[1][0] == 0
    assert XrayImage.objects.count() == 1


def test_listener_survives_a_peer_dropping_the_association_mid_transfer(node):
    from pynetdicom import AE

    ae = AE(ae_title="DROPPER")
    ae.add_requested_context(xray_dataset(np.zeros((4, 4), np.uint16)).SOPClassUID)
    assoc = ae.associate("127.0.0.1", node.port, ae_title="ORTHOFUSE")
    assert assoc.is_established
    # half a P-DATA-TF PDU (type 0x04, claims 100000 bytes), then the socket closes
    sock: socket.socket = assoc.dul.socket.socket
    sock.sendall(struct.pack(">BBI", 0x04, 0x00, 100000) + b"\0" * 1000)
    sock.shutdown(socket.SHUT_RDWR)
    assoc.abort()
    assert echo(node.port) == 0
    assert store(node.port, [_xray(6)])[0][0] == 0
    assert XrayImage.objects.count() == 1
