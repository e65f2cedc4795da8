"""Typed settings read from the environment (one place, with defaults for `make run`)."""

from __future__ import annotations

import os
import sys


def env_str(name: str, default: str = "") -> str:
    """A string setting; empty or unset falls back to ``default``."""
    value = os.environ.get(name, "").strip()
    return value if value else default


def env_bool(name: str, default: bool = False) -> bool:
    """A boolean setting: 1/true/yes/on are true, 0/false/no/off are false."""
    value = os.environ.get(name, "").strip().lower()
    if not value:
        return default
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ValueError(f"environment variable {name}={value!r} is not a boolean")


def env_int(name: str, default: int) -> int:
    """An integer setting."""
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        return int(value)
    except ValueError as exc:
        raise ValueError(f"environment variable {name}={value!r} is not an integer") from exc


def env_list(name: str, default: list[str] | None = None) -> list[str]:
    """A comma-separated list setting."""
    value = os.environ.get(name, "").strip()
    if not value:
        return list(default or [])
    return [item.strip() for item in value.split(",") if item.strip()]


def test_run_defaults() -> None:
    """Under pytest, default to development settings (``DJANGO_DEBUG=1``).

    pytest-django imports the settings before any conftest runs, so this cannot live in a
    conftest; setting the variable (not only the setting) lets the ``manage.py`` and
    ``celery`` processes that tests start inherit it. Production never imports pytest.
    """
    if "pytest" in sys.modules:
        os.environ.setdefault("DJANGO_DEBUG", "1")
