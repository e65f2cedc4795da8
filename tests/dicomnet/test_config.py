"""The node's settings are checked once, with a message naming the bad value."""

from __future__ import annotations

import pytest

from webapp.dicomnet.config import NodeConfig, node_config


def test_settings_are_read_with_overrides(settings, tmp_path):
    settings.ORTHOFUSE_DICOM_ALLOWED_CALLING_AE = [" CARM1 ", "PACS"]
    settings.ORTHOFUSE_DICOM_QUIET_S = 2.5
    settings.ORTHOFUSE_DICOM_STAGING_DIR = str(tmp_path)
    config = node_config(port=0, ae_title=None)
    assert config.allowed_calling_ae == ("CARM1", "PACS")
    assert (config.port, config.ae_title, config.quiet_s) == (0, "ORTHOFUSE", 2.5)
    assert config.staging_dir == tmp_path


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"ae_title": "X" * 17}, "1 to 16 ASCII"),
     ({"port": 70000}, "between 0 and 65535"),
     ({"allowed_calling_ae": ("OK", "É")}, "is not an AE title"),
     ({"multiframe": "first"}, "expected 'last' or 'all'"),
     ({"quiet_s": 0.0}, "above 0 seconds"),
     ({"care_team": " "}, "must name a care team")],
)
def test_bad_values_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        NodeConfig(**kwargs)
