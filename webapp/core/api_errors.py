"""REST error handler: every refusal (:class:`refusal.Refused`, bad input) is a 400 with its
one-line ``detail``; anything else is our bug, logged and answered 500 without a traceback,
never reported to the user as their mistake."""

from __future__ import annotations

import logging

from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from refusal import Refused

log = logging.getLogger(__name__)


def exception_handler(exc, context):
    response = drf_exception_handler(exc, context)
    if response is not None:
        return response
    if isinstance(exc, Refused):
        return Response({"detail": exc.message}, status=400)
    log.exception("unhandled API error")
    return Response({"detail": "internal error; the event was logged"}, status=500)
