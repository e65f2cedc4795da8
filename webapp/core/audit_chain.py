"""The audit trail's hash chain: each row stores the SHA-256 of its own contents and of the
row before it, so changing, removing or inserting a row anywhere breaks the chain
(``manage.py verify_audit`` finds where).

Rows are appended one at a time under a lock: the first statement of :func:`append` updates
the single ``AuditChainHead`` row, which serialises appenders on PostgreSQL (row lock) and
SQLite (database write lock) alike, so ids increase in chain order. The head also keeps the
last row's id and hash, so removing the newest rows is detected too.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC

from django.db import IntegrityError, router, transaction
from django.db.models import F
from django.utils import timezone

GENESIS = "0" * 64
HASHED_FIELDS = (
    "created_at",
    "user_id",
    "username",
    "action",
    "patient_id_ref",
    "patient_mrn",
    "object_type",
    "object_id",
    "detail",
    "ip_address",
    "path",
)


def _canonical(name: str, value) -> object:
    """One stored value in a form every database returns alike."""
    if value is None:
        return None
    if name == "created_at":
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if name == "ip_address":  # PostgreSQL's inet may come back as an address object
        return ipaddress.ip_address(str(value).split("/")[0]).compressed
    if isinstance(value, int):
        return value
    return str(value)


def row_hash(values: dict, prev_hash: str) -> str:
    """SHA-256 (hex) of the previous hash and the row's fields, as canonical JSON."""
    payload = [prev_hash] + [_canonical(name, values.get(name)) for name in HASHED_FIELDS]
    text = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _prepared(event) -> dict:
    """The field values as the database will store them (IPv6 normalised, and so on)."""
    values = {}
    for name in HASHED_FIELDS:
        field = event._meta.get_field(name.removesuffix("_id") if name == "user_id" else name)
        raw = getattr(event, name)
        values[name] = raw if name in ("created_at", "user_id") else field.get_prep_value(raw)
    return values


def _lock_head(head_model, using: str):
    """Update the head row first (the lock), creating it when missing; return it."""
    heads = head_model.objects.using(using)
    if not heads.filter(pk=1).update(sequence=F("sequence") + 1):
        try:
            with transaction.atomic(using=using):
                heads.create(pk=1, sequence=0, last_id=None, last_hash=GENESIS)
        except IntegrityError:  # created meanwhile by another appender
            pass
        heads.filter(pk=1).update(sequence=F("sequence") + 1)
    return heads.get(pk=1)


def append(event, insert: Callable[[], None]) -> None:
    """Chain ``event`` to the last row and insert it (``insert`` saves the new row)."""
    from webapp.core.models import AuditChainHead

    using = router.db_for_write(type(event))
    with transaction.atomic(using=using):
        head = _lock_head(AuditChainHead, using)
        if event.created_at is None:
            event.created_at = timezone.now()
        event.prev_hash = head.last_hash
        event.row_hash = row_hash(_prepared(event), head.last_hash)
        insert()
        AuditChainHead.objects.using(using).filter(pk=1).update(
            last_id=event.pk, last_hash=event.row_hash
        )


@dataclass(frozen=True)
class Break:
    """One place where the chain does not hold."""

    row_id: int | None
    reason: str

    def __str__(self) -> str:
        where = f"audit row {self.row_id}" if self.row_id is not None else "audit trail"
        return f"{where}: {self.reason}"


def verify(rows: Iterable[dict], head: dict | None) -> Iterator[Break]:
    """Check ``rows`` (dicts with id, prev_hash, row_hash and the hashed fields, in id order)
    against each other and against the head; yields every break found."""
    expected_prev = GENESIS
    last_id = None
    for row in rows:
        if row["prev_hash"] != expected_prev:
            yield Break(row["id"], "does not follow the row before it (a row was removed, "
                        "inserted or changed before it)")
        if row_hash(row, row["prev_hash"]) != row["row_hash"]:
            yield Break(row["id"], "its contents do not match its hash (the row was changed)")
        expected_prev = row["row_hash"]
        last_id = row["id"]
    if head is None:
        if last_id is not None:
            yield Break(None, "the chain head is missing")
        return
    if head["last_id"] != last_id or head["last_hash"] != expected_prev:
        yield Break(last_id, f"the newest row should be {head['last_id']} with the head's hash "
                    "(rows were removed from the end, or the head was changed)")
