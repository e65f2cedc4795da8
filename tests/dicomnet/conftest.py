"""A DICOM node started in-process on a free loopback port, with its own media and staging."""

from __future__ import annotations

import time

import pytest

CARE_TEAM = "OR inbox"


@pytest.fixture
def node_settings(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.ORTHOFUSE_DICOM_STAGING_DIR = str(tmp_path / "dicom-staging")
    settings.ORTHOFUSE_DICOM_CARE_TEAM = CARE_TEAM
    settings.ORTHOFUSE_DICOM_QUIET_S = 1.0
    settings.ORTHOFUSE_DICOM_ALLOWED_CALLING_AE = []
    settings.ORTHOFUSE_DICOM_MULTIFRAME = "last"
    return settings


@pytest.fixture
def make_node(node_settings, transactional_db):
    """``make_node(**overrides)`` -> a started :class:`DicomNode` on 127.0.0.1:<free port>."""
    from webapp.dicomnet.config import node_config
    from webapp.dicomnet.server import DicomNode

    nodes = []

    def make(**overrides):
        node = DicomNode(node_config(host="127.0.0.1", port=0, **overrides))
        node.start()
        nodes.append(node)
        return node

    yield make
    for node in nodes:
        node.stop()


@pytest.fixture
def orthanc(tmp_path_factory):
    """A throw-away Orthanc on loopback ports (skips with the reason when it cannot start)."""
    from tests.dicomnet.orthanc import OrthancUnavailable, start_orthanc

    try:
        pacs = start_orthanc(tmp_path_factory.mktemp("orthanc"))
    except OrthancUnavailable as exc:
        pytest.skip(str(exc))
    yield pacs
    pacs.stop()


@pytest.fixture
def orthanc_web(tmp_path_factory):
    """A throw-away Orthanc with its DICOMweb plugin (skips with the reason when missing)."""
    from tests.dicomnet.orthanc import OrthancUnavailable, start_orthanc

    try:
        pacs = start_orthanc(tmp_path_factory.mktemp("orthanc-web"), dicomweb=True)
    except OrthancUnavailable as exc:
        pytest.skip(str(exc))
    yield pacs
    pacs.stop()


@pytest.fixture
def node(make_node):
    return make_node()


def wait_for(predicate, timeout_s: float = 15.0, period_s: float = 0.1):
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(period_s)
    raise AssertionError(f"condition not met within {timeout_s} s")
