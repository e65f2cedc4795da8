"""A half-received CT series never becomes a study: not while its association is open, not
after the sender aborted, not when fewer instances came than the header announced."""

from __future__ import annotations

import time

from pydicom.uid import CTImageStorage
from pynetdicom import AE

from tests.dicomnet.conftest import wait_for
from tests.dicomnet.scu import store
from tests.dicomnet.test_ct_series import _series
from webapp.core.models import AuditEvent
from webapp.records.models import CTStudy, Patient


def _open_association(port: int):
    ae = AE(ae_title="SLOWPACS")
    ae.add_requested_context(CTImageStorage, "1.2.840.10008.1.2.1")
    assoc = ae.associate("127.0.0.1", port, ae_title="ORTHOFUSE")
    assert assoc.is_established
    return assoc


def test_an_open_association_holds_its_series_past_the_quiet_time(node, tmp_path):
    datasets, _ = _series(tmp_path / "in", n=8, seed=31)
    assoc = _open_association(node.port)
    for ds in datasets[:4]:
        assert assoc.send_c_store(ds).Status == 0
    time.sleep(node.config.quiet_s * 2.5)
    assert node.finish_due_series() == [] and CTStudy.objects.count() == 0
    for ds in datasets[4:]:
        assert assoc.send_c_store(ds).Status == 0
    assoc.release()
    assert wait_for(lambda: CTStudy.objects.first()).shape == [8, 32, 32]


def test_an_aborted_association_leaves_no_study_and_a_resend_makes_one(node, tmp_path):
    datasets, _ = _series(tmp_path / "in", n=8, seed=32)
    assoc = _open_association(node.port)
    for ds in datasets[:4]:
        assert assoc.send_c_store(ds).Status == 0
    assoc.abort()
    event = wait_for(lambda: AuditEvent.objects.filter(detail__contains="aborted").first())
    assert datasets[0].SeriesInstanceUID in event.detail
    assert CTStudy.objects.count() == 0
    assert not Patient.objects.filter(mrn="CT-7").exists()
    assert [s for s, _ in store(node.port, datasets)] == [0] * 8  # the sender retries
    assert wait_for(lambda: CTStudy.objects.first()).shape == [8, 32, 32]
    assert CTStudy.objects.count() == 1


def test_fewer_instances_than_the_header_announces_are_refused(node, tmp_path):
    datasets, _ = _series(tmp_path / "in", n=5, seed=33)
    for ds in datasets:
        ds.ImagesInAcquisition = 7
    assert [s for s, _ in store(node.port, datasets)] == [0] * 5
    event = wait_for(lambda: AuditEvent.objects.filter(detail__contains="incomplete").first())
    assert "5 of the 7 instances" in event.detail
    assert CTStudy.objects.count() == 0
