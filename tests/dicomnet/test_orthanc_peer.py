"""Orthanc (a real PACS, Debian's package) sends to our listener: echo, a CT series, X-rays,
and an object we refuse. Skips with the reason when Orthanc cannot start here."""

from __future__ import annotations

import urllib.error

import numpy as np
import pydicom
import pytest

from tests.dicomio.synth import xray_dataset
from tests.dicomnet.conftest import wait_for
from tests.dicomnet.test_ct_series import _series
from webapp.core.models import AuditEvent
from webapp.records.models import CTStudy, XrayImage


@pytest.fixture
def linked(orthanc, make_node):
    """Our node (accepting only Orthanc's AE title) known to Orthanc as 'orthofuse'."""
    node = make_node(allowed_calling_ae=(orthanc.aet,))
    orthanc.add_modality("orthofuse", node.config.ae_title, node.port)
    return orthanc, node


def test_orthanc_echoes_our_node(linked):
    orthanc, _ = linked
    assert orthanc.echo("orthofuse")


def test_orthanc_sends_a_ct_series_that_becomes_one_study(linked, tmp_path):
    orthanc, node = linked
    datasets, _ = _series(tmp_path / "ct", n=8, seed=11, mrn="PACS-1")
    ids = [orthanc.upload(path) for path in sorted((tmp_path / "ct").glob("*.dcm"))]
    series = orthanc.request("GET", f"/instances/{ids[0]}/series")["ID"]
    orthanc.send("orthofuse", [series])
    study = wait_for(lambda: CTStudy.objects.first())
    assert study.patient.mrn == "PACS-1" and study.shape == [8, 32, 32]
    assert study.spacing_mm == pytest.approx([0.8, 0.7, 2.5])
    assert CTStudy.objects.count() == 1


def test_orthanc_sends_xrays_and_an_object_we_refuse(linked, tmp_path):
    orthanc, _ = linked
    ids = []
    for k, modality in enumerate(("XA", "RF")):
        ds = xray_dataset(np.random.default_rng(k).integers(0, 4000, (20, 20)).astype(np.uint16),
                          modality=modality)
        ds.PatientID = "PACS-2"
        path = tmp_path / f"x{k}.dcm"
        ds.save_as(path, enforce_file_format=True)
        ids.append(orthanc.upload(path))
    orthanc.send("orthofuse", ids)
    assert XrayImage.objects.filter(patient__mrn="PACS-2").count() == 2
    mr = pydicom.dcmread(tmp_path / "x0.dcm")
    mr.SOPClassUID = mr.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.4"
    mr.SOPInstanceUID = mr.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
    mr.Modality = "MR"
    mr.save_as(tmp_path / "mr.dcm", enforce_file_format=True)
    with pytest.raises(urllib.error.HTTPError):
        orthanc.send("orthofuse", [orthanc.upload(tmp_path / "mr.dcm")])
    event = wait_for(lambda: AuditEvent.objects.filter(action="dicom_refused").first())
    assert "ORTHANC" in event.detail and "unsupported object" in event.detail
    assert XrayImage.objects.count() == 2
