"""Archival of terminal work items, their restoring, and GDPR erasure (README, Operations;
docs/operations.md, "Archival and erasure").

- `archive_items`: completed, failed and cancelled items closed before a cutoff move, with
  their audit streams, to the archive tables, in batches of one transaction each
  (`FOR UPDATE SKIP LOCKED`: an item someone holds is left for the next run).
- `restore_item`: one archived item back into the live tables, its stream with it.
- `erase_subject`: a data subject's value removed from items' context data (live and
  archived), from their audit payloads and their outbox rows, with a `workitem.erased`
  record in each item's stream that names the redacted records (audit.services.audit_verify).

The moves are SQL over whole rows (to_jsonb / jsonb_populate_record), so they need PostgreSQL;
the audit records keep every column, their hashes included (archive/migrations/0002).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import timedelta

from django.db import connection, models, transaction
from django.utils import timezone

from archive.models import ArchivedAuditRecord, ArchivedWorkItem
from audit.models import AuditRecord
from audit.services import ERASED_ACTION, audit_record
from config import context
from events.models import InboxCommand, OutboxEvent
from notifications.models import Notification, NotificationDelivery
from workitems import crypto
from workitems.errors import NotFound, ValidationFailed
from workitems.models import TERMINAL_STATES, Queue, WorkItem

ERASED = "[erased]"
AUDIT_COLUMNS = ", ".join(f.column for f in AuditRecord._meta.concrete_fields)
ITEM = WorkItem._meta.db_table
AUDIT = AuditRecord._meta.db_table
ARCHIVED_ITEM = ArchivedWorkItem._meta.db_table
ARCHIVED_AUDIT = ArchivedAuditRecord._meta.db_table
# (through table, its other column, the archive's column): the item's candidate and excluded lists.
LISTS = tuple(
    (getattr(WorkItem, name).through._meta.db_table, other, archived)
    for name, other, archived in (
        ("candidate_users", "user_id", "candidate_user_ids"),
        ("candidate_groups", "group_id", "candidate_group_ids"),
        ("excluded_users", "user_id", "excluded_user_ids"),
    )
)
TERMINAL_SQL = "(" + ", ".join(f"'{s}'" for s in TERMINAL_STATES) + ")"
# When an item ended: closed_at is set by complete, fail and cancel; the others are fallbacks.
ENDED_SQL = "COALESCE(w.closed_at, w.completed_at, w.updated_at)"
TEXT_FIELDS = (models.CharField, models.TextField, models.JSONField)  # where erase_subject looks


def _require_postgresql() -> None:
    if connection.vendor != "postgresql":
        raise ValidationFailed([{"field": "database", "message": "archival and erasure need PostgreSQL"}])


def _streams(ids) -> list[str]:
    return [f"workitem:{i}" for i in ids]


# --- archiving --------------------------------------------------------------------------------


@dataclass
class ArchiveReport:
    cutoff: str
    dry_run: bool
    items: int = 0
    records: int = 0
    batches: int = 0

    def as_dict(self) -> dict:
        return self.__dict__.copy()


def archive_items(
    *,
    older_than: timedelta,
    batch: int = 1000,
    dry_run: bool = False,
    now=None,
    progress: Callable[[ArchiveReport], None] | None = None,
) -> ArchiveReport:
    """Move terminal items that ended more than `older_than` ago, with their audit records, to
    the archive tables, `batch` items per transaction; `progress` is called after each batch.
    With `dry_run`, count what would move and change nothing."""
    _require_postgresql()
    if batch < 1:
        raise ValidationFailed([{"field": "batch", "message": "must be at least 1"}])
    cutoff = (now or timezone.now()) - older_than
    report = ArchiveReport(cutoff=cutoff.isoformat(), dry_run=dry_run)
    due = f"FROM {ITEM} w WHERE w.state IN {TERMINAL_SQL} AND {ENDED_SQL} < %s"
    with connection.cursor() as cur:
        if dry_run:
            cur.execute(f"SELECT count(*) {due}", [cutoff])
            report.items = cur.fetchone()[0]
            cur.execute(
                f"SELECT count(*) FROM {AUDIT} WHERE stream IN (SELECT 'workitem:' || w.id {due})",
                [cutoff],
            )
            report.records = cur.fetchone()[0]
            return report
        after = 0
        while True:
            with transaction.atomic():
                cur.execute(
                    f"SELECT w.id {due} AND w.id > %s ORDER BY w.id LIMIT %s FOR UPDATE SKIP LOCKED",
                    [cutoff, after, batch],
                )
                ids = [row[0] for row in cur.fetchall()]
                if not ids:
                    break
                report.records += _move_out(cur, ids)
            report.items += len(ids)
            report.batches += 1
            after = ids[-1]
            if progress:
                progress(report)
    return report


def _move_out(cur, ids: list[int]) -> int:
    """The items `ids` (locked) and their streams into the archive; returns the records moved."""
    lists = ", ".join(
        f"COALESCE((SELECT jsonb_agg(t.{other} ORDER BY t.{other}) FROM {through} t WHERE t.workitem_id = w.id), "
        "'[]'::jsonb)"
        for through, other, _ in LISTS
    )
    cur.execute(
        f"INSERT INTO {ARCHIVED_ITEM} (id, queue_id, state, assignee_id, closed_at, archived_at, row, "
        f"{', '.join(a for _, _, a in LISTS)}) "
        f"SELECT w.id, w.queue_id, w.state, w.assignee_id, {ENDED_SQL}, now(), to_jsonb(w), {lists} "
        f"FROM {ITEM} w WHERE w.id = ANY(%s)",
        [ids],
    )
    records = _move_records(cur, AUDIT, ARCHIVED_AUDIT, _streams(ids))
    for through, _, _ in LISTS:
        cur.execute(f"DELETE FROM {through} WHERE workitem_id = ANY(%s)", [ids])
    cur.execute(f"DELETE FROM {ITEM} WHERE id = ANY(%s)", [ids])
    return records


def _move_records(cur, source: str, target: str, streams: list[str]) -> int:
    """Copy the streams' records, unchanged, then delete them from `source` (its trigger lets a
    row go only when its identical copy is in `target`)."""
    cur.execute(
        f"INSERT INTO {target} ({AUDIT_COLUMNS}) SELECT {AUDIT_COLUMNS} FROM {source} WHERE stream = ANY(%s)",
        [streams],
    )
    cur.execute(f"DELETE FROM {source} WHERE stream = ANY(%s)", [streams])
    return cur.rowcount


def restore_item(item_id: int) -> WorkItem:
    """Bring one archived item back into the live tables, with its audit stream; NotFound if it
    is not archived. Statistics are left as they were: the insert's statistics deltas (a
    created and a completed item, for the stats trigger) are taken back in the same transaction."""
    _require_postgresql()
    with transaction.atomic(), connection.cursor() as cur:
        cur.execute(f"SELECT id FROM {ARCHIVED_ITEM} WHERE id = %s FOR UPDATE", [item_id])
        if cur.fetchone() is None:
            raise NotFound(f"archived work item {item_id} not found")
        cur.execute("SELECT COALESCE(max(id), 0) FROM stats_delta")
        before = cur.fetchone()[0]
        cur.execute(
            f"INSERT INTO {ITEM} SELECT (jsonb_populate_record(NULL::{ITEM}, a.row)).* FROM {ARCHIVED_ITEM} a "
            "WHERE a.id = %s RETURNING queue_id, state, created_at",
            [item_id],
        )
        # The rows the stats trigger wrote for that insert (newer than `before`, with its key).
        cur.execute(
            "DELETE FROM stats_delta WHERE id > %s AND queue_id = %s AND state = %s AND item_created_at = %s",
            [before, *cur.fetchone()],
        )
        for through, other, archived in LISTS:
            cur.execute(
                f"INSERT INTO {through} (workitem_id, {other}) SELECT a.id, (jsonb_array_elements_text(a.{archived}))"
                f"::bigint FROM {ARCHIVED_ITEM} a WHERE a.id = %s",
                [item_id],
            )
        _move_records(cur, ARCHIVED_AUDIT, AUDIT, _streams([item_id]))
        cur.execute(f"DELETE FROM {ARCHIVED_ITEM} WHERE id = %s", [item_id])
    return WorkItem.objects.get(pk=item_id)


# --- erasure ----------------------------------------------------------------------------------


def scrub(value, secret: str):
    """`value` (JSON) with every occurrence of `secret` replaced by ERASED: in strings (also
    inside longer ones), in object keys, and numbers that print as `secret`."""
    if isinstance(value, dict):
        return {scrub(k, secret): scrub(v, secret) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub(v, secret) for v in value]
    if isinstance(value, str):
        return value.replace(secret, ERASED)
    if isinstance(value, int | float) and not isinstance(value, bool) and str(value) == secret:
        return ERASED
    return value


@dataclass
class ErasureReport:
    context_key: str
    live_items: list[int] = field(default_factory=list)
    archived_items: list[int] = field(default_factory=list)
    audit_records: int = 0
    outbox_events: int = 0
    other_rows: int = 0  # notifications, notification deliveries, inbound commands

    def as_dict(self) -> dict:
        return self.__dict__.copy()


def erase_subject(*, context_key: str, value: str, actor=None) -> ErasureReport:
    """Erase `value` from every item whose context_data[`context_key`] is it (as text), live or
    archived: from its row (every text and JSON column: context data, title, result, reasons …),
    its audit records' payloads, its outbox rows, the notifications about it and the inbound
    commands that named it; one transaction per item, each item's stream getting a
    `workitem.erased` record that names the redacted records and the hash of their redacted
    content (the value itself is written nowhere)."""
    _require_postgresql()
    if not context_key or not value:
        field_name = "context_key" if not context_key else "value"
        raise ValidationFailed([{"field": field_name, "message": "must not be empty"}])
    encrypting = sorted(Queue.objects.filter(encrypted_keys__contains=[context_key]).values_list("name", flat=True))
    if encrypting:
        raise ValidationFailed(
            [
                {
                    "field": "context_key",
                    "message": f"{context_key} is an encrypted context key (queues {', '.join(encrypting)}): its "
                    "values are stored encrypted and cannot be searched; erase by a clear key (an erased item's "
                    "encrypted values are erased whole)",
                }
            ]
        )
    report = ErasureReport(context_key=context_key)
    with connection.cursor() as cur:
        cur.execute(f"SELECT id FROM {ITEM} WHERE context_data ->> %s = %s ORDER BY id", [context_key, value])
        live = [r[0] for r in cur.fetchall()]
        cur.execute(
            f"SELECT id FROM {ARCHIVED_ITEM} WHERE row -> 'context_data' ->> %s = %s ORDER BY id", [context_key, value]
        )
        archived = [r[0] for r in cur.fetchall()]
    for item_id in live:
        if _erase_live(item_id, context_key, value, actor, report):
            report.live_items.append(item_id)
    for item_id in archived:
        if _erase_archived(item_id, context_key, value, actor, report):
            report.archived_items.append(item_id)
    return report


def _erase_live(item_id, key, value, actor, report) -> bool:
    with transaction.atomic():
        item = WorkItem.objects.select_for_update().filter(pk=item_id).first()
        if item is None or str((item.context_data or {}).get(key)) != value:
            return False  # archived or changed since the search
        _scrub_rows([item], value)
        scrubbed = scrub(item.context_data or {}, value)
        if (cleared := _without_sealed(scrubbed)) != scrubbed:
            WorkItem.objects.filter(pk=item_id).update(context_data=cleared)
        redacted = _redact_records(AuditRecord.objects.filter(stream=f"workitem:{item_id}"), AUDIT, value)
        report.audit_records += len(redacted)
        _scrub_copies(item_id, value, report)
        _tombstone(item_id, key, redacted, actor, work_item=item)
    return True


def _erase_archived(item_id, key, value, actor, report) -> bool:
    with transaction.atomic():
        archived = ArchivedWorkItem.objects.select_for_update().filter(pk=item_id).first()
        if archived is None or str((archived.row.get("context_data") or {}).get(key)) != value:
            return False
        row = scrub(archived.row, value)
        row["context_data"] = _without_sealed(row.get("context_data"))
        ArchivedWorkItem.objects.filter(pk=item_id).update(row=row)
        redacted = _redact_records(
            ArchivedAuditRecord.objects.filter(stream=f"workitem:{item_id}"), ARCHIVED_AUDIT, value
        )
        report.audit_records += len(redacted)
        _scrub_copies(item_id, value, report)
        record = _tombstone(item_id, key, redacted, actor, work_item=None)
        with connection.cursor() as cur:  # the stream stays whole in the archive
            cur.execute(
                f"INSERT INTO {ARCHIVED_AUDIT} ({AUDIT_COLUMNS}) SELECT {AUDIT_COLUMNS} FROM {AUDIT} "
                "WHERE stream = %s AND seq = %s",
                [record.stream, record.seq],
            )
            cur.execute(f"DELETE FROM {AUDIT} WHERE stream = %s AND seq = %s", [record.stream, record.seq])
    return True


def _without_sealed(data):
    """An erased item's encrypted context values go whole: the subject's value cannot be looked
    for inside a ciphertext (workitems.crypto)."""
    if not isinstance(data, dict):
        return data
    return {k: (ERASED if crypto.is_sealed(v) else v) for k, v in data.items()}


def _redact_records(records, table: str, value: str) -> dict[str, str]:
    """Scrub the records' `data` in place (the trigger allows a data-only UPDATE under
    workstream.audit_redaction); returns {seq: hash of the redacted content}."""
    redacted: dict[str, str] = {}
    with connection.cursor() as cur:
        for rec in records.order_by("seq"):
            data = scrub(rec.data, value)
            if data == rec.data:
                continue
            if not redacted:
                cur.execute("SET LOCAL workstream.audit_redaction = 'on'")
            cur.execute(f"UPDATE {table} SET data = %s::jsonb WHERE id = %s", [json.dumps(data), rec.id])
            redacted[str(rec.seq)] = redacted_hash(rec, data)
        if redacted:
            cur.execute("SET LOCAL workstream.audit_redaction = 'off'")
    return redacted


def redacted_hash(rec, data) -> str:
    """The hash `AuditRecord.compute_hash` gives the record `rec` (live or archived) with `data`."""
    values = {f.attname: getattr(rec, f.attname) for f in AuditRecord._meta.concrete_fields}
    copy = AuditRecord(**values)
    copy.data = data
    return copy.compute_hash()


def _scrub_rows(rows, value: str) -> int:
    """Scrub `value` from each row's text and JSON columns (an UPDATE of the changed ones); how many changed."""
    changed = 0
    for row in rows:
        changes = {}
        for f in type(row)._meta.concrete_fields:
            old = getattr(row, f.attname)
            if isinstance(f, TEXT_FIELDS) and (new := scrub(old, value)) != old:
                changes[f.attname] = new
        if changes:
            type(row).objects.filter(pk=row.pk).update(**changes)
            changed += 1
    return changed


def _scrub_copies(item_id: int, value: str, report: ErasureReport) -> None:
    """The item's data where other tables copied it: its outbox events, the notifications about it
    (in-app and their deliveries) and the inbound commands that named it."""
    report.outbox_events += _scrub_rows(
        OutboxEvent.objects.filter(aggregate_type="workitem", aggregate_id=str(item_id)), value
    )
    for model in (Notification, NotificationDelivery, InboxCommand):
        report.other_rows += _scrub_rows(model.objects.filter(work_item_id=item_id), value)


def _tombstone(item_id, key, redacted, actor, *, work_item) -> AuditRecord:
    with context.acting(channel="system") if actor is None else nullcontext():
        return audit_record(
            stream=f"workitem:{item_id}",
            action=ERASED_ACTION,
            actor=actor,
            work_item=work_item,
            data={"context_key": key, "redacted": redacted},
        )
