#!/usr/bin/env bash
# Runs the whole test suite with the project's virtual environment.
# pytest's exit code 5 ("no tests collected") is treated as a failure with a message.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
"$PY" -m ruff check . || exit 1
# House limit: no production module over 400 lines (tests and migrations exempt).
"$PY" scripts/check_module_size.py || exit 1
# Layer contracts (pyproject.toml [tool.importlinter]): science packages stay Django-free.
.venv/bin/lint-imports --no-cache || exit 1
"$PY" -m pytest "$@"
rc=$?
if [ "$rc" -eq 5 ]; then
  echo "pytest collected no tests: the suite is missing" >&2
  exit 1
fi
exit "$rc"
