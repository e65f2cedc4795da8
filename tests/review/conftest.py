"""Review tests store files under a per-test temporary media folder."""

from tests.core.factories import isolated_media  # noqa: F401
