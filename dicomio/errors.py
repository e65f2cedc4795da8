"""Refusals raised by the Django-free readers (no Django imports).

Every refusal carries a one-line human ``message`` that names the problem; callers show it
as-is (upload form, management command, API error) and never a traceback.
"""

from __future__ import annotations

from refusal import Refused


class InputRefused(Refused):
    """The input cannot be imported; ``message`` says why in one line."""


class MultipleSeriesFound(InputRefused):
    """The input holds more than one image series; ``series`` lists them.

    Each item is a dict ``{"series_uid", "description", "n_slices", "modality"}``; pass one
    ``series_uid`` to :func:`dicomio.load_ct` to choose.
    """

    def __init__(self, series: list[dict]) -> None:
        self.series = series
        listing = "; ".join(
            f"{s['series_uid'] or '(no UID)'} '{s['description']}' {s['modality']} "
            f"{s['n_slices']} slice(s)"
            for s in series
        )
        super().__init__(f"the input holds {len(series)} series, choose one: {listing}")


def reraise_if_fatal(exc: BaseException) -> None:
    """Re-raise interpreter-level exceptions; anything else from a decoder is a refusal.

    Some decoders are Rust extensions whose panics (``pyo3_runtime.PanicException``) derive
    from ``BaseException``, so corrupt data must be caught with ``except BaseException``.
    """
    if isinstance(exc, KeyboardInterrupt | SystemExit | GeneratorExit | MemoryError):
        raise exc
