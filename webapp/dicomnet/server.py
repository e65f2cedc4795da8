"""The DICOM node: a Storage SCP + Verification SCP (pynetdicom) and its CT series finisher.

``DicomNode(config).start()`` listens in background threads and returns; ``stop()`` ends
it. ``manage.py dicom_listener`` and the tests run this same class (the command then
waits for SIGINT/SIGTERM). Each association runs in its own thread; every C-STORE is
answered with success or a failure status (0xA9xx/0xCxxx, reason in Error Comment).
"""

from __future__ import annotations

import logging
import threading

from django.db import close_old_connections, connection
from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, AllStoragePresentationContexts, _config, evt
from pynetdicom.sop_class import Verification

from webapp.dicomnet.config import NodeConfig
from webapp.dicomnet.receiver import Receiver, audit_refusal
from webapp.dicomnet.status import INTERNAL, StoreRefused, failure

logger = logging.getLogger(__name__)

MAX_ASSOCIATIONS = 16
NETWORK_TIMEOUT_S = 60  # a peer silent this long mid-association is dropped


def _peer(event) -> tuple[str, str]:
    requestor = event.assoc.requestor
    return str(requestor.ae_title).strip(), f"{requestor.address}:{requestor.port}"


class DicomNode:
    """One listening node; see the module docstring."""

    def __init__(self, config: NodeConfig) -> None:
        self.config = config
        self.receiver = Receiver(config)
        self._server = None
        self._stop = threading.Event()
        self._finisher: threading.Thread | None = None
        self._sending: dict[int, set[str]] = {}  # association -> CT series it staged
        self._sending_lock = threading.Lock()
        self.ae = self._make_ae()

    def _make_ae(self) -> AE:
        ae = AE(ae_title=self.config.ae_title)
        ae.add_supported_context(Verification)
        for context in AllStoragePresentationContexts:
            ae.add_supported_context(context.abstract_syntax, ALL_TRANSFER_SYNTAXES)
        ae.require_calling_aet = list(self.config.allowed_calling_ae)
        ae.maximum_associations = MAX_ASSOCIATIONS
        ae.network_timeout = NETWORK_TIMEOUT_S
        ae.acse_timeout = 30
        ae.dimse_timeout = NETWORK_TIMEOUT_S
        return ae

    # ------------------------------------------------------------------ lifecycle
    @property
    def port(self) -> int:
        """The bound TCP port (useful with ``port=0``)."""
        if self._server is None:
            raise RuntimeError("the DICOM node is not started")
        return int(self._server.server_address[1])

    def start(self) -> None:
        """Bind and serve in background threads; also resumes series left by a stop."""
        # Accept every storage SOP class (also private or unknown ones) so an unsupported
        # object gets a C-STORE failure status with a reason, not a rejected context.
        # pynetdicom keeps this switch per process; it only changes acceptor negotiation.
        _config.UNRESTRICTED_STORAGE_SERVICE = True
        recovered = self.receiver.stager.recover()
        if recovered:
            logger.info("%d CT series left mid-import will be imported again", recovered)
        handlers = [
            (evt.EVT_C_ECHO, self._on_echo),
            (evt.EVT_C_STORE, self._on_store),
            (evt.EVT_REJECTED, self._on_rejected),
            (evt.EVT_ABORTED, self._on_aborted),
            (evt.EVT_RELEASED, self._on_released),
        ]
        self._server = self.ae.start_server(
            (self.config.host, self.config.port), block=False, evt_handlers=handlers
        )
        self._stop.clear()
        self._finisher = threading.Thread(
            target=self._finish_series, name="dicom-series-finisher", daemon=True
        )
        self._finisher.start()
        logger.info(
            "DICOM node %s listening on %s:%d", self.config.ae_title, self.config.host, self.port
        )

    def stop(self) -> None:
        """Stop listening (again is a no-op); staged series stay on disk for the next start."""
        self._stop.set()
        if self._server is not None:
            self._server.shutdown()
            self._server = None
        if self._finisher is not None:
            self._finisher.join(timeout=60)
            self._finisher = None
        logger.info("DICOM node %s stopped", self.config.ae_title)

    def finish_due_series(self) -> list:
        """Import every complete series now; returns the studies made."""
        studies = []
        for uid in self.receiver.stager.due(self.config.quiet_s):
            staged = self.receiver.stager.take(uid)
            if staged is not None:
                study = self.receiver.import_series(staged)
                if study is not None:
                    studies.append(study)
        return studies

    def _finish_series(self) -> None:
        period = min(1.0, self.config.quiet_s / 4)
        while not self._stop.wait(period):
            try:
                self.finish_due_series()
            except Exception:  # noqa: BLE001 - keep finishing later series
                logger.exception("finishing staged CT series failed")
            finally:
                connection.close()

    # ------------------------------------------------------------------ handlers
    def _on_echo(self, event) -> int:
        return 0x0000

    def _on_store(self, event):
        calling_ae, address = _peer(event)
        sop_class = str(event.request.AffectedSOPClassUID or "")
        sop_instance = str(event.request.AffectedSOPInstanceUID or "")
        close_old_connections()
        try:
            outcome = self.receiver.receive(
                event.encoded_dataset(), sop_class, calling_ae, sop_instance
            )
            logger.info("C-STORE from %s (%s): %s", calling_ae, address, outcome.message)
            if outcome.series_uid:
                self._note_sending(event.assoc, outcome.series_uid)
            return 0x0000
        except StoreRefused as refused:
            logger.warning("C-STORE from %s refused: %s", calling_ae, refused.message)
            audit_refusal(
                f"C-STORE from {calling_ae} at {address} refused: {refused.message}", refused.mrn
            )
            return failure(refused)
        except Exception as exc:  # noqa: BLE001 - answer, never drop the association
            logger.exception("C-STORE from %s failed", calling_ae)
            refused = StoreRefused(INTERNAL, f"internal error ({type(exc).__name__}); nothing stored")
            audit_refusal(f"C-STORE from {calling_ae} at {address}: {refused.message}")
            return failure(refused)
        finally:
            connection.close()

    def _on_rejected(self, event) -> None:
        calling_ae, address = _peer(event)
        allowed = self.config.allowed_calling_ae
        reason = (
            "calling AE title not allowed"
            if allowed and calling_ae not in allowed
            else "too many associations or an invalid request"
        )
        logger.warning("association from %s (%s) rejected: %s", calling_ae, address, reason)
        try:
            audit_refusal(
                f"association from AE {calling_ae!r} at {address} to {self.config.ae_title} "
                f"rejected: {reason}"
            )
        finally:
            connection.close()

    def _note_sending(self, assoc, series_uid: str) -> None:
        with self._sending_lock:
            series = self._sending.setdefault(id(assoc), set())
            if series_uid in series:
                return
            series.add(series_uid)
        self.receiver.stager.opened(series_uid)

    def _association_ended(self, assoc, *, aborted: bool) -> None:
        with self._sending_lock:
            series = self._sending.pop(id(assoc), set())
        for uid in series:
            self.receiver.stager.closed(uid, aborted=aborted)

    def _on_released(self, event) -> None:
        self._association_ended(event.assoc, aborted=False)

    def _on_aborted(self, event) -> None:
        calling_ae, address = _peer(event)
        logger.warning("association from %s (%s) aborted; nothing of an unfinished "
                       "instance is stored, a CT series it was sending is refused",
                       calling_ae, address)
        self._association_ended(event.assoc, aborted=True)
