"""Pytest plugin (loaded by ``-p tests.skip_summary`` in pyproject.toml): the run ends with
how many tests skipped for lack of each outside part (shared public data, Chromium, the
PACS, the single sign-on provider, ...), so a green run never hides what it did not test."""

from __future__ import annotations

from collections import Counter

import pytest

# (what is missing, words that name it in a skip reason), first match wins
CATEGORIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("shared public data (../shared/data or ORTHOFUSE_SHARED_DATA)", ("shared data",)),
    ("Chromium / Playwright (browser tests)", ("chromium", "playwright", "front-end bundle")),
    ("Orthanc PACS", ("orthanc",)),
    ("OpenID Connect provider", ("oidc", "openid")),
    ("a GPU", ("cuda", "gpu")),
)


def skip_category(reason: str) -> str:
    """The outside part a skip reason names, or ``"other"``."""
    text = reason.lower()
    for name, words in CATEGORIES:
        if any(word in text for word in words):
            return name
    return "other"


def _reason(report: pytest.TestReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2])
    return str(longrepr)


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:  # noqa: ARG001
    skipped = terminalreporter.stats.get("skipped", [])
    counts = Counter(skip_category(_reason(report)) for report in skipped)
    terminalreporter.section("skipped for lack of an outside part")
    if not counts:
        terminalreporter.write_line("none: every test ran")
        return
    for name, count in counts.most_common():
        terminalreporter.write_line(f"{count:4d} skipped: {name}")
