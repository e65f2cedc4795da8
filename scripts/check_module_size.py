"""Fail when a production module is longer than the house limit (400 lines).

Tests and migrations are exempt. Run by ``scripts/run_tests.sh`` (``make test`` and CI)."""

from __future__ import annotations

import os
import subprocess
import sys

LIMIT_LINES = 400
EXEMPT_PARTS = ("migrations/", "tests/", "node_modules/")


def oversized(limit: int = LIMIT_LINES) -> list[tuple[str, int]]:
    """(path, lines) of every production ``.py`` file (tracked or new) above ``limit`` lines."""
    files = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "*.py"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    found = []
    for path in files:
        if any(part in path for part in EXEMPT_PARTS):
            continue
        if not os.path.exists(path):  # deleted in the working tree, not yet committed
            continue
        with open(path, encoding="utf-8") as fh:
            n = sum(1 for _ in fh)
        if n > limit:
            found.append((path, n))
    return sorted(found, key=lambda item: -item[1])


def main() -> int:
    found = oversized()
    for path, n in found:
        print(f"{path}: {n} lines (limit {LIMIT_LINES}): split it by concept", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
