"""Signals of the records app: other apps react to stored records without records
importing them (the operating room's arrival hook listens to :data:`xray_stored`)."""

from __future__ import annotations

import logging

from django.dispatch import Signal

from webapp.records.models import XrayImage

logger = logging.getLogger(__name__)

# Sent once an X-ray is stored and committed, whatever brought it (DICOM listener, web
# upload job, import_xray command). Arguments: ``xray`` (XrayImage), ``user`` (or None).
xray_stored = Signal()


def announce_xray_stored(xray, *, user=None) -> None:
    """Send :data:`xray_stored` for a committed X-ray. The X-ray stays stored whatever a
    receiver makes of it, so a receiver's failure is logged, never raised."""
    for receiver, outcome in xray_stored.send_robust(sender=XrayImage, xray=xray, user=user):
        if isinstance(outcome, Exception):
            logger.error(
                "%s failed for X-ray %s", getattr(receiver, "__qualname__", receiver), xray.pk,
                exc_info=(type(outcome), outcome, outcome.__traceback__),
            )
