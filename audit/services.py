"""Writing and checking the audit trail. Callers hold the lock that orders the stream."""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction

from audit.models import AuditRecord
from config import context


def audit_record(
    *,
    stream: str,
    action: str,
    actor=None,
    work_item=None,
    from_state: str = "",
    to_state: str = "",
    data: dict | None = None,
    correlation_id: str = "",
    channel: str | None = None,
) -> AuditRecord:
    """Append one record to `stream`, chained to the stream's previous record.

    Must run inside the transaction of the change it records, with that
    entity's row locked, so the stream's order is the order of its changes.
    """
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("audit_record must run inside the change's transaction")
    last = AuditRecord.objects.filter(stream=stream).order_by("-seq").values_list("seq", "hash").first()
    seq, prev_hash = (last[0] + 1, last[1]) if last else (1, "")
    record = AuditRecord(
        stream=stream,
        seq=seq,
        work_item=work_item,
        action=action,
        actor=actor if actor is not None and actor.pk else None,
        actor_username=getattr(actor, "username", "") or "",
        channel=channel or context.current_channel(),
        from_state=from_state or "",
        to_state=to_state or "",
        data=data or {},
        request_id=context.current_request_id(),
        correlation_id=correlation_id or "",
        prev_hash=prev_hash,
    )
    record.hash = record.compute_hash()
    record.save(force_insert=True)
    return record


@dataclass
class ChainReport:
    """Result of walking the audit chains."""

    ok: bool
    records_checked: int
    streams_checked: int
    broken_id: int | None = None
    broken_stream: str | None = None
    broken_seq: int | None = None
    reason: str = ""

    def as_dict(self) -> dict:
        return self.__dict__.copy()


def audit_verify(*, stream: str | None = None, chunk_size: int = 5000) -> ChainReport:
    """Walk every stream (or one) in order and report the first broken link."""
    qs = AuditRecord.objects.order_by("stream", "seq")
    if stream:
        qs = qs.filter(stream=stream)
    checked = streams = 0
    current_stream, expected_seq, prev_hash = None, 1, ""
    for rec in qs.iterator(chunk_size=chunk_size):
        if rec.stream != current_stream:
            current_stream, expected_seq, prev_hash = rec.stream, 1, ""
            streams += 1
        reason = ""
        if rec.seq != expected_seq:
            reason = f"expected seq {expected_seq}, found {rec.seq} (a record is missing)"
        elif rec.prev_hash != prev_hash:
            reason = "prev_hash does not match the previous record's hash"
        elif rec.compute_hash() != rec.hash:
            reason = "content does not match its hash (the record was altered)"
        if reason:
            return ChainReport(False, checked, streams, rec.id, rec.stream, rec.seq, reason)
        checked += 1
        expected_seq, prev_hash = rec.seq + 1, rec.hash
    return ChainReport(True, checked, streams)
