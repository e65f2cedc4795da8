"""REST error handler: every refusal is a JSON body with a human ``detail``, never a traceback."""

from __future__ import annotations

import logging

from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

log = logging.getLogger(__name__)


def exception_handler(exc, context):
    response = drf_exception_handler(exc, context)
    if response is not None:
        return response
    if isinstance(exc, ValueError):
        return Response({"detail": str(exc)}, status=400)
    log.exception("unhandled API error")
    return Response({"detail": "internal error; the event was logged"}, status=500)
