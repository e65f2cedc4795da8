"""Signals of the records app: other apps react to stored records without records
importing them (the operating room's arrival hook listens to :data:`xray_stored`)."""

from __future__ import annotations

from django.dispatch import Signal

# Sent once an X-ray is stored and committed, whatever brought it (DICOM listener, web
# upload job, import_xray command). Arguments: ``xray`` (XrayImage), ``user`` (or None).
xray_stored = Signal()
