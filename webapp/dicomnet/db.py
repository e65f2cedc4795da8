"""Database writes of the DICOM node: one at a time per process, retried when SQLite is busy.

Associations run in parallel threads; SQLite refuses at once (no busy wait) a transaction
that read first and then wants to write while another connection writes. Each write
section of the node therefore runs under one process lock, and a "database is locked"
from another process is retried a few times with a short back-off.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

from django.db import OperationalError

T = TypeVar("T")
DB_LOCK = threading.RLock()
LOCKED_RETRIES = 5
BACKOFF_S = 0.2


def serialized(fn: Callable[..., T], *args, **kwargs) -> T:
    """``fn(*args, **kwargs)`` under the node's write lock; retried while the database is
    locked by another process (``fn`` must leave nothing behind when it raises)."""
    for attempt in range(LOCKED_RETRIES + 1):
        with DB_LOCK:
            try:
                return fn(*args, **kwargs)
            except OperationalError as exc:
                if "locked" not in str(exc) or attempt == LOCKED_RETRIES:
                    raise
        time.sleep(BACKOFF_S * (attempt + 1))
    raise AssertionError("unreachable")
