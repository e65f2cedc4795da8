"""``manage.py dicom_listener [--port 11112] [--ae-title ORTHOFUSE]``: run the DICOM node.

A Storage SCP and Verification SCP until SIGINT/SIGTERM (docs/CONVENTIONS.md). Other
settings: ``ORTHOFUSE_DICOM_HOST``, ``ORTHOFUSE_DICOM_ALLOWED_CALLING_AE``,
``ORTHOFUSE_DICOM_CARE_TEAM``, ``ORTHOFUSE_DICOM_QUIET_S``, ``ORTHOFUSE_DICOM_MULTIFRAME``.
"""

from __future__ import annotations

import signal
import threading

from django.core.management.base import BaseCommand, CommandError

from webapp.dicomnet.config import node_config
from webapp.dicomnet.server import DicomNode

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise CommandError(f"--port {text!r} is not a number") from None
    if not 1 <= port <= 65535:
        raise CommandError(f"--port {port} is not between 1 and 65535")
    return port


class Command(BaseCommand):
    help = "Run the DICOM Storage/Verification SCP until SIGINT or SIGTERM."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--port", default=None, help="TCP port (default 11112)")
        parser.add_argument("--ae-title", default=None, help="our AE title (default ORTHOFUSE)")
        parser.add_argument("--host", default=None, help="address to bind (default 127.0.0.1)")

    def handle(self, *args, **options) -> None:
        port = _port(options["port"]) if options["port"] is not None else None
        try:
            config = node_config(port=port, ae_title=options["ae_title"], host=options["host"])
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        node = DicomNode(config)
        stop = threading.Event()
        previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in STOP_SIGNALS}
        try:
            try:
                node.start()
            except OSError as exc:
                raise CommandError(
                    f"cannot listen on {config.host}:{config.port}: {exc.strerror or exc}"
                ) from None
            self.stdout.write(
                f"DICOM listener {config.ae_title} on {config.host}:{node.port} "
                f"(quiet time {config.quiet_s:g} s); Ctrl-C stops",
            )
            self.stdout.flush()
            try:
                while not stop.wait(0.5):
                    pass
            finally:
                node.stop()
            self.stdout.write("DICOM listener stopped")
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
