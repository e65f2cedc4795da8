"""What every registration service shares: the refusal type, one-line messages, the device."""

from __future__ import annotations

from refusal import Refused


class RegistrationRefused(Refused):
    """A registration request or run was refused; the message (one line) says why."""


def one_line(exc: BaseException) -> str:
    """The first line of an exception's text (at most 480 characters)."""
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:480]


def device_name() -> str:
    """``cuda`` when a GPU is available to this process, else ``cpu``."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"
