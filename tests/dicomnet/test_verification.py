"""C-ECHO, and calling AE titles restricted to a configured list (refusals audited)."""

from __future__ import annotations

from tests.dicomnet.conftest import wait_for
from tests.dicomnet.scu import echo
from webapp.core.models import AuditEvent


def test_c_echo_succeeds(node):
    assert echo(node.port) == 0x0000


def test_calling_ae_outside_the_list_is_rejected_and_audited(make_node):
    node = make_node(allowed_calling_ae=("CARM1",))
    assert echo(node.port, calling_ae="INTRUDER") is None
    assert echo(node.port, calling_ae="CARM1") == 0x0000
    events = wait_for(lambda: list(AuditEvent.objects.filter(action="dicom_refused")))
    assert len(events) == 1
    assert "INTRUDER" in events[0].detail and "not allowed" in events[0].detail
