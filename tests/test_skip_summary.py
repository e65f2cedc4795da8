"""The end-of-run summary names what each skipped test lacked."""

from tests.skip_summary import skip_category


def test_reasons_map_to_the_missing_part():
    assert skip_category("shared data not available: /x/ct").startswith("shared public data")
    assert skip_category("Chromium not installed at /usr/bin/chromium").startswith("Chromium")
    assert skip_category("orthanc could not start on 127.0.0.1:8042") == "Orthanc PACS"
    assert skip_category("no worker subprocess support for sqlite") == "other"
