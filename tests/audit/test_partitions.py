"""Monthly partitions of the audit trail and the outbox (config/partitions.py), on real PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import call_command
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from audit.models import AuditHead, AuditRecord
from audit.services import audit_record, audit_verify
from config import partitions
from events.models import Delivery, OutboxEvent

pytestmark = pytest.mark.django_db


def month(n: int) -> datetime:
    """The start (UTC) of the month `n` months from this one."""
    now = datetime.now(UTC)
    return partitions._months_after(now.replace(day=1, hour=0, minute=0, second=0, microsecond=0), n)


def partitions_of(table: str) -> dict[str, str]:
    with connection.cursor() as cur:
        cur.execute(
            "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i JOIN pg_class c "
            "ON c.oid = i.inhrelid WHERE i.inhparent = %s::regclass",
            [table],
        )
        return dict(cur.fetchall())


def where(table: str, row_id: int) -> str:
    with connection.cursor() as cur:
        cur.execute(f"SELECT tableoid::regclass::text FROM {table} WHERE id = %s", [row_id])
        return cur.fetchone()[0]


def event(at: datetime, **fields) -> OutboxEvent:
    return OutboxEvent.objects.create(
        event_type="workitem.created.v1",
        aggregate_id="1",
        sequence=1,
        occurred_at=at,
        producer="t",
        payload={},
        **fields,
    )


def test_both_tables_are_partitioned_by_month_with_a_default_and_three_months_ahead():
    for table in (partitions.AUDIT, partitions.OUTBOX):
        assert partitions.is_partitioned(table)
        parts = partitions_of(table)
        assert parts[f"{table}_default"] == "DEFAULT"
        assert parts[f"{table}_legacy"].startswith("FOR VALUES FROM (MINVALUE) TO (")
        for n in range(1, partitions.MONTHS_AHEAD + 1):
            name = f"{table}_p{month(n):%Y%m}"
            assert name in parts or month(n) < month(2), name  # this month and the next may be the legacy's


def test_every_audit_partition_refuses_update_delete_and_truncate(make_item):
    item = make_item()
    record = AuditRecord.objects.get(work_item=item)
    legacy = where("audit_auditrecord", record.pk)
    assert legacy == "audit_auditrecord_legacy"
    with connection.cursor() as cur:
        cur.execute("SET CONSTRAINTS ALL IMMEDIATE")  # else TRUNCATE stops at the create's deferred checks
    for sql in (
        f"UPDATE {legacy} SET action = 'x' WHERE id = {record.pk}",
        f"DELETE FROM {legacy} WHERE id = {record.pk}",
        "DELETE FROM audit_auditrecord",
        *(f"TRUNCATE {name}" for name in partitions_of("audit_auditrecord")),
        "TRUNCATE audit_auditrecord",
    ):
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cur:
            cur.execute(sql)
    assert audit_verify().ok


def test_a_duplicate_seq_for_a_stream_is_refused_by_its_head():
    """(stream, seq) is no longer a unique index: the head's trigger refuses the second seq 1."""
    with transaction.atomic():
        audit_record(stream="test:dup", head=None, action="first")
    with pytest.raises(DatabaseError, match="audit heads only advance"), transaction.atomic():
        audit_record(stream="test:dup", head=None, action="again")  # as a writer that read no head would
    with transaction.atomic():
        audit_record(stream="test:dup", head=(1, "stale"), action="second")  # links to a wrong hash, yet seq 2
    with pytest.raises(DatabaseError, match="audit heads only advance"), transaction.atomic():
        audit_record(stream="test:dup", head=(1, "stale"), action="second again")
    assert list(AuditRecord.objects.filter(stream="test:dup").values_list("seq", flat=True)) == [1, 2]
    assert AuditHead.objects.get(stream="test:dup").seq == 2


def test_a_row_of_a_month_without_a_partition_lands_in_the_default_one():
    far = datetime(2999, 1, 1, tzinfo=UTC)
    assert where("events_outboxevent", event(far).pk) == "events_outboxevent_default"
    record = AuditRecord(stream="test:far", seq=1, action="x", channel="system", created_at=far)
    record.hash = record.compute_hash()
    record.save()
    assert where("audit_auditrecord", record.pk) == "audit_auditrecord_default"
    soon = event(month(2) + timedelta(days=3))
    assert where("events_outboxevent", soon.pk) == f"events_outboxevent_p{month(2):%Y%m}"


def test_maintenance_creates_the_months_ahead_once_and_a_dry_run_nothing():
    months = partitions.MONTHS_AHEAD + 2
    names = [f"{t}_p{month(n):%Y%m}" for t in (partitions.AUDIT, partitions.OUTBOX) for n in (months - 1, months)]
    dry = partitions.maintain(months_ahead=months, retention_days=7, dry_run=True)
    assert {r[1] for r in dry if r[2] == "would create"} == set(names)
    assert not any(n in partitions_of(partitions.AUDIT) or n in partitions_of(partitions.OUTBOX) for n in names)
    made = partitions.maintain(months_ahead=months, retention_days=7)
    assert {r[1] for r in made if r[2] == "created"} == set(names)
    again = partitions.maintain(months_ahead=months, retention_days=7)
    assert not [r for r in again if r[2] in ("created", "failed")]
    new_audit = f"audit_auditrecord_p{month(months):%Y%m}"
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cur:
        cur.execute(f"TRUNCATE {new_audit}")  # a new partition gets its own TRUNCATE guard
    with connection.cursor() as cur:
        cur.execute("SELECT reloptions FROM pg_class WHERE relname = %s", [f"events_outboxevent_p{month(months):%Y%m}"])
        assert "autovacuum_vacuum_scale_factor=0.01" in cur.fetchone()[0]


def test_an_old_outbox_partition_is_dropped_only_once_nothing_in_it_is_pending():
    name = f"events_outboxevent_p{month(2):%Y%m}"
    at = month(2) + timedelta(days=5)
    as_of = month(3) + timedelta(days=8)  # the partition's month ended 8 days before
    published = [event(at, published_at=at) for _ in range(3)]
    waiting = event(at)
    current = event(timezone.now())  # unpublished, in the partition of today's month

    def run(**kw):
        return {r[1]: (r[2], r[3]) for r in partitions.maintain(retention_days=7, as_of=as_of, **kw)}

    assert run()[name] == ("kept", "it holds unpublished events")
    OutboxEvent.objects.filter(pk=waiting.pk).update(dead_lettered_at=as_of - timedelta(days=1))
    assert run()[name] == ("kept", "it holds unpublished events")  # a dead letter younger than the retention
    OutboxEvent.objects.filter(pk=waiting.pk).update(dead_lettered_at=as_of - timedelta(days=20))
    pending = Delivery.objects.create(event=published[0], event_type="workitem.created.v1", url="http://x")
    done = Delivery.objects.create(
        event=published[1], event_type="workitem.created.v1", url="http://x", status=Delivery.DELIVERED
    )
    assert run()[name] == ("kept", "webhook deliveries are pending")
    Delivery.objects.filter(pk=pending.pk).update(status=Delivery.FAILED)
    assert run(dry_run=True)[name] == ("would drop", "1 dead letter(s) older than the retention")
    assert name in partitions_of(partitions.OUTBOX)
    report = run()
    assert report[name] == ("dropped", "1 dead letter(s) older than the retention")
    assert report[where("events_outboxevent", current.pk)][0] == "kept"  # the unpublished event's partition
    assert name not in partitions_of(partitions.OUTBOX)
    assert not OutboxEvent.objects.filter(pk__in=[e.pk for e in [*published, waiting]]).exists()
    assert not Delivery.objects.filter(pk__in=[pending.pk, done.pk]).exists()
    assert OutboxEvent.objects.filter(pk=current.pk).exists()


def test_the_command_reports_and_a_dry_run_changes_nothing(capsys):
    before = partitions_of(partitions.OUTBOX)
    call_command("partitions", "--dry-run", "--months-ahead", str(partitions.MONTHS_AHEAD + 1))
    out = capsys.readouterr().out
    assert f"events_outboxevent_p{month(partitions.MONTHS_AHEAD + 1):%Y%m}" in out and "would create" in out
    assert partitions_of(partitions.OUTBOX) == before
