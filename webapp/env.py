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


# Training overrides (tests, demos, long CPU runs): variable -> (Preset field, type).
TRAINING_OVERRIDES = {
    "ORTHOFUSE_TRAIN_STEPS": ("steps", int),
    "ORTHOFUSE_TRAIN_POOL": ("pool_size", int),
    "ORTHOFUSE_TRAIN_SIZE": ("input_size", int),
    "ORTHOFUSE_TRAIN_BATCH": ("batch_size", int),
    "ORTHOFUSE_TRAIN_MAX_SECONDS": ("max_seconds", float),
    "ORTHOFUSE_TRAIN_PRECISION": ("precision", str),
}


def training_overrides() -> dict:
    """The training preset fields set in the environment (``ORTHOFUSE_TRAIN_*``), read when
    a training starts so that a job, a command or a test sees the current values; passed
    explicitly to :func:`registration.engine.training.get_preset` (engines read no
    environment)."""
    out: dict = {}
    for name, (key, kind) in TRAINING_OVERRIDES.items():
        raw = os.environ.get(name, "").strip()
        if not raw:
            continue
        try:
            out[key] = kind(raw)
        except ValueError:
            raise ValueError(f"environment variable {name}={raw!r} is not a {kind.__name__}") from None
    return out

