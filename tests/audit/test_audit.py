"""The audit trail: append-only for every client (ORM and SQL), hash-chained per stream,
and `audit_verify` finds the first broken link."""

from __future__ import annotations

import json

import pytest
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, transaction

from audit.models import AuditImmutable, AuditRecord
from audit.services import audit_record, audit_verify
from events.models import OutboxEvent
from events.outbox import outbox_enqueue

TRIGGER = "audit_auditrecord_no_change"


def _sql(statement: str, params=()) -> None:
    with connection.cursor() as cur:
        cur.execute(statement, params)


def _tamper(statement: str, params=()) -> None:
    """Change the trail the way only a table owner could: with the trigger off, inside the
    test's transaction (so it is rolled back with the test)."""
    # The rows were inserted in this transaction, so their deferred foreign-key checks are
    # still pending; PostgreSQL will not ALTER a table with pending trigger events.
    _sql("SET CONSTRAINTS ALL IMMEDIATE")
    _sql(f"ALTER TABLE audit_auditrecord DISABLE TRIGGER {TRIGGER}")
    try:
        _sql(statement, params)
    finally:
        _sql(f"ALTER TABLE audit_auditrecord ENABLE TRIGGER {TRIGGER}")
        _sql("SET CONSTRAINTS ALL DEFERRED")


# --- append-only ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_auditrecord SET action = 'nothing' WHERE id = %s",
        "UPDATE audit_auditrecord SET data = '{}'::jsonb",
        "DELETE FROM audit_auditrecord WHERE id = %s",
        "DELETE FROM audit_auditrecord",
    ],
)
def test_sql_update_and_delete_are_refused_by_the_trigger(statement, trail):
    record = AuditRecord.objects.filter(work_item=trail[0]).first()
    count = AuditRecord.objects.count()
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        _sql(statement, [record.pk] if "%s" in statement else [])
    assert AuditRecord.objects.count() == count
    assert AuditRecord.objects.get(pk=record.pk).action == record.action
    assert audit_verify().ok


def test_the_orm_refuses_changes_to_existing_records(trail):
    record = AuditRecord.objects.filter(work_item=trail[0]).first()
    record.action = "forged"
    with pytest.raises(AuditImmutable):
        record.save()
    with pytest.raises(AuditImmutable):
        record.delete()
    with pytest.raises(AuditImmutable):
        AuditRecord.objects.filter(pk=record.pk).update(action="forged")
    with pytest.raises(AuditImmutable):
        AuditRecord.objects.filter(pk=record.pk).delete()
    with pytest.raises(AuditImmutable):
        AuditRecord.objects.all().delete()
    assert AuditRecord.objects.get(pk=record.pk).action == "create"
    assert audit_verify().ok


def test_orm_paths_around_the_queryset_guard_still_meet_the_trigger(trail):
    """`_base_manager` (used by Django internally) is a plain manager: only the trigger stops it."""
    record = AuditRecord.objects.filter(work_item=trail[0]).first()
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        AuditRecord._base_manager.filter(pk=record.pk).update(action="forged")
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        AuditRecord._base_manager.filter(pk=record.pk)._raw_delete(connection.alias)
    assert AuditRecord.objects.get(pk=record.pk).action == "create"


@pytest.mark.django_db(transaction=True)
def test_audit_and_outbox_writes_need_the_changes_transaction():
    """Outside a transaction (autocommit) neither helper writes: a record or event could
    otherwise outlive a change that rolled back."""
    assert not connection.in_atomic_block
    with pytest.raises(RuntimeError, match="inside the change's transaction"):
        audit_record(stream="user:1", action="nothing")
    with pytest.raises(RuntimeError, match="inside the change's transaction"):
        outbox_enqueue(event_type="workitem.nothing.v1", aggregate_id=1, sequence=1, payload={})
    assert not AuditRecord.objects.exists() and not OutboxEvent.objects.exists()


# --- the chain --------------------------------------------------------------------------------


def test_records_are_chained_per_stream(trail):
    first, second = trail
    for item, n in ((first, 3), (second, 2)):
        records = list(AuditRecord.objects.filter(stream=f"workitem:{item.pk}").order_by("seq"))
        assert [r.seq for r in records] == list(range(1, n + 1))
        assert records[0].prev_hash == ""
        for prev, rec in zip(records, records[1:], strict=False):
            assert rec.prev_hash == prev.hash
        assert all(r.hash == r.compute_hash() for r in records)
    report = audit_verify()
    assert report.ok and report.records_checked == 5 and report.streams_checked == 2


def test_verify_finds_an_altered_record(trail):
    first, _ = trail
    victim = AuditRecord.objects.get(stream=f"workitem:{first.pk}", seq=2)
    _tamper(
        "UPDATE audit_auditrecord SET data = jsonb_set(data, '{assignee}', '\"mallory\"') WHERE id = %s",
        [victim.pk],
    )
    assert AuditRecord.objects.get(pk=victim.pk).data["assignee"] == "mallory"
    report = audit_verify()
    assert not report.ok
    assert (report.broken_id, report.broken_stream, report.broken_seq) == (victim.pk, victim.stream, 2)
    assert "altered" in report.reason
    assert not audit_verify(stream=victim.stream).ok
    assert audit_verify(stream=f"workitem:{trail[1].pk}").ok  # other streams are intact
    # and the trigger is back on
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        _sql("DELETE FROM audit_auditrecord")


def test_verify_finds_a_rehashed_record_by_its_successor(trail):
    """A forger who recomputes the edited record's own hash still breaks the next link."""
    first, _ = trail
    victim = AuditRecord.objects.get(stream=f"workitem:{first.pk}", seq=2)
    victim.actor_username = "mallory"
    forged_hash = victim.compute_hash()
    _tamper(
        "UPDATE audit_auditrecord SET actor_username = 'mallory', hash = %s WHERE id = %s", [forged_hash, victim.pk]
    )
    report = audit_verify()
    assert not report.ok
    assert report.broken_seq == 3 and "prev_hash" in report.reason


def test_verify_finds_a_deleted_record(trail):
    first, _ = trail
    victim = AuditRecord.objects.get(stream=f"workitem:{first.pk}", seq=2)
    _tamper("DELETE FROM audit_auditrecord WHERE id = %s", [victim.pk])
    report = audit_verify()
    assert not report.ok
    assert (report.broken_stream, report.broken_seq) == (victim.stream, 3)
    assert "missing" in report.reason


def test_management_command_reports_ok_and_fails_on_a_broken_chain(trail, capsys):
    call_command("audit_verify")
    assert "audit chain OK: 5 records in 2 streams" in capsys.readouterr().out
    call_command("audit_verify", "--json")
    assert json.loads(capsys.readouterr().out)["ok"] is True

    victim = AuditRecord.objects.get(stream=f"workitem:{trail[0].pk}", seq=1)
    _tamper("UPDATE audit_auditrecord SET to_state = 'COMPLETED' WHERE id = %s", [victim.pk])
    with pytest.raises(CommandError, match=f"BROKEN at record id={victim.pk}"):
        call_command("audit_verify")
    with pytest.raises(CommandError):
        call_command("audit_verify", "--stream", victim.stream)
    call_command("audit_verify", "--stream", f"workitem:{trail[1].pk}")  # the intact stream passes
