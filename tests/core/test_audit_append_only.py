"""The audit trail is append-only (ORM and, on PostgreSQL, a trigger) and tamper-evident: a
hash chain that ``verify_audit`` checks, naming the row that was changed or removed."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from contextlib import contextmanager
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, connections, transaction

from tests.database_url import subprocess_database_url
from webapp.core.models import AuditChainHead, AuditEvent

ROOT = Path(__file__).resolve().parents[2]
A = AuditEvent.Action
TABLE = AuditEvent._meta.db_table
on_postgres = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="the trigger exists on PostgreSQL only"
)


def _events(n: int = 3, **fields) -> list[AuditEvent]:
    return [
        AuditEvent.objects.create(
            username=f"user{i}", action=A.VIEW, patient_mrn=f"M-{i}", ip_address="10.0.0.7",
            detail=f"event {i}", **fields,
        )
        for i in range(n)
    ]  # fmt: skip


@contextmanager
def _trigger_off():
    """Tampering needs the PostgreSQL trigger out of the way (as a database owner could)."""
    if connection.vendor != "postgresql":
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute(f"ALTER TABLE {TABLE} DISABLE TRIGGER orthofuse_audit_append_only")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"ALTER TABLE {TABLE} ENABLE TRIGGER orthofuse_audit_append_only")


def _raw(sql: str, params: list) -> None:
    with _trigger_off(), connection.cursor() as cursor:
        cursor.execute(sql, params)


def _verify_message() -> str:
    with pytest.raises(CommandError) as caught:
        call_command("verify_audit")
    return str(caught.value)


@pytest.mark.django_db
def test_manager_refuses_bulk_update_delete_and_create():
    _events(2)
    with pytest.raises(PermissionError):
        AuditEvent.objects.update(detail="x")
    with pytest.raises(PermissionError):
        AuditEvent.objects.filter(username="user0").delete()
    with pytest.raises(PermissionError):
        AuditEvent.objects.bulk_create([AuditEvent(username="x", action=A.VIEW)])
    assert AuditEvent.objects.count() == 2
    assert set(AuditEvent.objects.values_list("detail", flat=True)) == {"event 0", "event 1"}


@pytest.mark.django_db
def test_rows_are_chained_and_verify(capsys):
    first, second, third = _events(3)
    assert len(first.row_hash) == 64 and first.prev_hash == "0" * 64
    assert second.prev_hash == first.row_hash and third.prev_hash == second.row_hash
    call_command("verify_audit")
    assert "intact: 3 rows" in capsys.readouterr().out
    assert AuditChainHead.objects.get().last_id == third.pk


@pytest.mark.django_db
def test_changed_row_is_named():
    rows = _events(4)
    _raw(f"UPDATE {TABLE} SET patient_mrn = %s WHERE id = %s", ["X-999", rows[2].pk])
    message = _verify_message()
    assert f"audit row {rows[2].pk}: its contents do not match" in message
    assert f"audit row {rows[1].pk}" not in message and f"audit row {rows[3].pk}" not in message


@pytest.mark.django_db
def test_removed_row_is_found_at_the_next_row():
    rows = _events(4)
    _raw(f"DELETE FROM {TABLE} WHERE id = %s", [rows[1].pk])
    assert f"audit row {rows[2].pk}: does not follow" in _verify_message()


@pytest.mark.django_db
def test_removed_newest_row_is_found_by_the_head():
    rows = _events(3)
    _raw(f"DELETE FROM {TABLE} WHERE id = %s", [rows[2].pk])
    assert f"the newest row should be {rows[2].pk}" in _verify_message()


@pytest.mark.django_db
def test_deleting_a_user_keeps_their_audit_rows_unchanged(surgeon_a):
    event = AuditEvent.objects.create(user=surgeon_a, username="surgeon_a", action=A.VIEW)
    user_id = surgeon_a.pk
    User.objects.filter(pk=user_id).delete()
    stored = AuditEvent.objects.values("user_id", "username").get(pk=event.pk)
    assert stored == {"user_id": user_id, "username": "surgeon_a"}
    call_command("verify_audit")


@on_postgres
@pytest.mark.django_db
def test_postgres_trigger_refuses_update_and_delete():
    [event] = _events(1)
    for sql in (f"UPDATE {TABLE} SET detail = 'x' WHERE id = %s", f"DELETE FROM {TABLE} WHERE id = %s"):
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute(sql, [event.pk])
    assert AuditEvent.objects.get(pk=event.pk).detail == "event 0"


@pytest.mark.django_db(transaction=True)
def test_concurrent_appends_keep_one_chain():
    """Four threads (own connections) append at once; the head lock keeps a single chain."""
    errors: list[BaseException] = []

    def append(worker: int) -> None:
        try:
            for i in range(8):
                AuditEvent.objects.create(username=f"w{worker}", action=A.VIEW, detail=str(i))
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=append, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    assert AuditEvent.objects.count() == 32
    call_command("verify_audit")


@pytest.mark.django_db(transaction=True)
def test_verify_audit_command_exits_non_zero_naming_the_row():
    rows = _events(3)
    _raw(f"UPDATE {TABLE} SET username = %s WHERE id = %s", ["someone-else", rows[1].pk])
    result = subprocess.run(
        [sys.executable, "manage.py", "verify_audit"],
        cwd=ROOT, env={**os.environ, "DATABASE_URL": subprocess_database_url()},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and f"audit row {rows[1].pk}" in lines[0], result.stderr
