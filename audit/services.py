"""Writing and checking the audit trail. Callers hold the lock that orders the stream.

What `audit_verify` proves, and what it cannot, is the docstring of `audit_verify`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from archive.models import ArchivedAuditRecord
from audit.models import AccessRecord, AuditCheckpoint, AuditHead, AuditRecord
from config import context, statements, wsconfig
from config.timefmt import isoformat_z

log = logging.getLogger(__name__)


_READ = object()
ERASED_ACTION = "workitem.erased"  # the tombstone of archive.services.erase_subject


def audit_record(
    *, stream: str, head: tuple[int, str] | None | object = _READ, batch: statements.Batch | None = None, **fields
) -> AuditRecord:
    """Append one record to `stream`, chained to the stream's previous record (the fields are
    `audit_record_into`'s).

    Must run inside the transaction of the change it records, with that
    entity's row locked, so the stream's order is the order of its changes. `head` is the
    stream's head (seq, hash; None for a new stream) when the caller read it under that lock,
    else it is read here. With `batch`, the record and the head's advance are added to it, to
    go with the change itself as one statement; without, they are sent now as one statement.
    """
    _check_in_transaction()
    if head is _READ:
        # The head, not the last record: a stream whose end was deleted goes on from its head,
        # and the gap stays visible to audit_verify.
        head = AuditHead.objects.filter(stream=stream).values_list("seq", "hash").first()
    writes = statements.Batch() if batch is None else batch
    record = audit_record_into(writes, head=head, stream=stream, **fields)
    if batch is None:
        writes.run()
    return record


def audit_record_into(
    batch: statements.Batch,
    *,
    head: tuple[int, str] | None,
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
    """`audit_record` for a caller that has read the stream's head (seq, hash; None for a new
    stream) under the lock that orders the stream: the record and the head's advance are
    added to `batch`, to be sent with the change itself as one statement. The hash is the
    same bytes `audit_verify` recomputes (AuditRecord.compute_hash)."""
    _check_in_transaction()
    seq, prev_hash = (head[0] + 1, head[1]) if head else (1, "")
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
    batch.insert(AuditRecord, [record])
    # The head: one INSERT … ON CONFLICT (stream) DO UPDATE (its trigger lets it advance by one only).
    batch.insert(
        AuditHead,
        [AuditHead(stream=stream, seq=seq, hash=record.hash, updated_at=record.created_at)],
        unique_fields=["stream"],
        update_fields=["seq", "hash", "updated_at"],
    )
    return record


def _check_in_transaction() -> None:
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("audit_record must run inside the change's transaction")


# --- checkpoints ------------------------------------------------------------------------------

CHECKPOINT_KEEP = 48  # the newest checkpoints kept; older ones are deleted by the next checkpoint


def checkpoint_key() -> bytes:
    """AUDIT_CHECKPOINT_KEY (or _FILE) when set, else a key derived from SECRET_KEY."""
    key = settings.AUDIT_CHECKPOINT_KEY
    if key:
        return key.encode()
    return hmac.new(settings.SECRET_KEY.encode(), b"workstream.audit.checkpoint", hashlib.sha256).digest()


def checkpoint_mac(created_at, entries) -> str:
    """HMAC-SHA256 over the checkpoint's time and its sorted (stream, seq, hash) entries."""
    message = json.dumps(
        {"created_at": isoformat_z(created_at), "heads": sorted([s, n, h] for s, n, h in entries)},
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hmac.new(checkpoint_key(), message.encode(), hashlib.sha256).hexdigest()


def audit_checkpoint(*, keep: int = CHECKPOINT_KEEP) -> AuditCheckpoint:
    """Sign every stream's head as it is now, and drop all but the newest `keep` checkpoints.

    One SELECT reads the heads, so the checkpoint is one consistent snapshot: a head is in it
    only if its record committed, and records are never removed, so a later verify finds
    every record a checkpoint names unless someone deleted it.
    """
    if keep < 1:
        raise ValueError("keep at least the newest checkpoint")
    entries = list(AuditHead.objects.order_by("stream").values_list("stream", "seq", "hash").iterator(chunk_size=5000))
    created_at = timezone.now()
    with transaction.atomic():
        checkpoint = AuditCheckpoint.objects.create(
            created_at=created_at,
            streams=len(entries),
            records=sum(seq for _, seq, _ in entries),
            heads={stream: seq for stream, seq, _ in entries},
            mac=checkpoint_mac(created_at, entries),
        )
        kept = AuditCheckpoint.objects.order_by("-created_at", "-id").values_list("id", flat=True)[:keep]
        AuditCheckpoint.objects.exclude(id__in=list(kept)).delete()
    # In the logs too: a copy of the signature outside the database.
    log.info(
        "audit checkpoint %s: %s streams, %s records",
        checkpoint.pk,
        checkpoint.streams,
        checkpoint.records,
        extra={"checkpoint": checkpoint.pk, "checkpoint_mac": checkpoint.mac},
    )
    return checkpoint


# --- verifying --------------------------------------------------------------------------------


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
    heads_checked: int = 0
    checkpoint_id: int | None = None
    checkpoint_at: str | None = None
    archived_records: int = 0  # of records_checked, those in the archive (archive_items)
    redactions: int = 0  # records whose data a later workitem.erased record redacted (erase_subject)

    def as_dict(self) -> dict:
        return self.__dict__.copy()


def _end_problem(head, last_seq: int, last_hash: str) -> str:
    """Why the stream's last record is not its head ("" when it is)."""
    if head is None:
        return f"the stream ends at seq {last_seq} but has no head (its head row was deleted)"
    if head[0] > last_seq:
        return f"the stream ends at seq {last_seq} but its head is at seq {head[0]} (records at its end are missing)"
    if head[0] < last_seq:
        return f"the stream goes on to seq {last_seq} beyond its head at seq {head[0]} (records written around it)"
    if head[1] != last_hash:
        return "the last record's hash is not the head's (the end of the stream was rewritten)"
    return ""


class _Walk:
    """State of one verify run: the heads not yet met, what the checkpoint needs, counters."""

    def __init__(self, heads: dict, wanted: dict):
        self.heads = heads  # stream → (seq, hash), popped as each stream's end is checked
        self.wanted = wanted  # stream → seq in the checkpoint
        self.signed: dict[str, str] = {}  # stream → hash of its record at the checkpoint's seq
        self.records = self.streams = self.heads_checked = 0
        self.archived = self.redactions = 0
        self.redacted: dict[tuple[str, int], tuple[int, str]] = {}  # (stream, seq) → (erasure's seq, hash)

    def redaction_of(self, rec) -> bool:
        """`rec`'s content is what a later `workitem.erased` record of its stream (ERASED_ACTION,
        archive.services.erase_subject) says its redaction hashes to; its stored hash stays the
        original's, so the chain's links are unchanged."""
        erasure = self.redacted.get((rec.stream, rec.seq))
        return erasure is not None and erasure[0] > rec.seq and erasure[1] == rec.compute_hash()

    def load_redactions(self, qs) -> None:
        """The redactions the erasure records of `qs` (verified in the walk like any record) name."""
        for stream, seq, data in qs.filter(action=ERASED_ACTION).order_by("seq").values_list("stream", "seq", "data"):
            for redacted_seq, digest in (data.get("redacted") or {}).items():
                self.redacted[(stream, int(redacted_seq))] = (seq, digest)

    def report(self, *, rec_id=None, stream=None, seq=None, reason="", checkpoint=None) -> ChainReport:
        return ChainReport(
            ok=not reason,
            records_checked=self.records,
            streams_checked=self.streams,
            broken_id=rec_id,
            broken_stream=stream,
            broken_seq=seq,
            reason=reason,
            heads_checked=self.heads_checked,
            archived_records=self.archived,
            redactions=self.redactions,
            checkpoint_id=checkpoint.pk if checkpoint else None,
            checkpoint_at=isoformat_z(checkpoint.created_at) if checkpoint else None,
        )


def _walk_chains(qs, walk: _Walk, chunk_size: int) -> dict | None:
    """Check every record's link and every stream's end; the first problem as report fields."""
    current, expected_seq, prev_hash, last_id = None, 1, "", None

    def end_of(stream):
        problem = _end_problem(walk.heads.pop(stream, None), expected_seq - 1, prev_hash)
        walk.heads_checked += 1
        if problem:
            return {"rec_id": last_id, "stream": stream, "seq": expected_seq - 1, "reason": problem}
        return None

    for rec in qs.iterator(chunk_size=chunk_size):
        if rec.stream != current:
            if current is not None and (problem := end_of(current)):
                return problem
            current, expected_seq, prev_hash = rec.stream, 1, ""
            walk.streams += 1
        reason = ""
        if rec.seq != expected_seq:
            reason = f"expected seq {expected_seq}, found {rec.seq} (a record is missing)"
        elif rec.prev_hash != prev_hash:
            reason = "prev_hash does not match the previous record's hash"
        elif rec.compute_hash() != rec.hash:
            if walk.redaction_of(rec):
                walk.redactions += 1
            else:
                reason = "content does not match its hash (the record was altered)"
        if reason:
            return {"rec_id": rec.id, "stream": rec.stream, "seq": rec.seq, "reason": reason}
        if walk.wanted.get(rec.stream) == rec.seq:
            walk.signed[rec.stream] = rec.hash
        walk.records += 1
        expected_seq, prev_hash, last_id = rec.seq + 1, rec.hash, rec.id
    if current is not None and (problem := end_of(current)):
        return problem
    return None


class _Rows:
    """Archived records as AuditRecord instances (same columns: the same hash)."""

    def __init__(self, qs):
        self.qs = qs

    def iterator(self, chunk_size: int):
        names = [f.attname for f in AuditRecord._meta.concrete_fields]
        for values in self.qs.values_list(*names).iterator(chunk_size=chunk_size):
            yield AuditRecord(**dict(zip(names, values, strict=True)))


def audit_verify(*, stream: str | None = None, chunk_size: int = 5000) -> ChainReport:
    """Walk every stream (or one) in order and report the first problem.

    What an `ok` proves, for every stream (or the one named):
    - each record's content matches its hash and the previous record's hash (nothing edited,
      reordered or removed from the middle);
    - the stream ends at its head (`AuditHead`, written in each record's transaction): records
      removed from the end, and a whole stream removed while its head stayed, are found;
    - every stream of the newest checkpoint (`audit_checkpoint`, HMAC-signed) still reaches the
      seq it had then with the hash that was signed: a stream deleted together with its head,
      or rewritten from the start and re-hashed with its head moved, is found. The signature is
      checked in a full run; with `stream` only that stream's entry is compared.

    What it cannot see: a stream created after the newest checkpoint and deleted with its head;
    records appended at the end after the checkpoint by someone who also moves the head; and
    anything done by whoever holds the checkpoint key and can write the tables as their owner
    (triggers disabled, or a superuser's `session_replication_role = replica`), who can rewrite
    records, heads and checkpoints alike. With no checkpoint yet, deleted streams whose heads
    went too are not found. On PostgreSQL triggers refuse UPDATE, DELETE and TRUNCATE of
    records, deleting or rewinding heads, and changing checkpoints, to every role that does not
    own the tables; the runtime role should not (README, security).
    """
    heads_qs = AuditHead.objects.all()
    qs = AuditRecord.objects.order_by("stream", "seq")
    if stream:
        heads_qs, qs = heads_qs.filter(stream=stream), qs.filter(stream=stream)
    checkpoint = AuditCheckpoint.objects.order_by("-created_at", "-id").first()
    wanted = dict(checkpoint.heads) if checkpoint else {}
    if stream:
        wanted = {stream: wanted[stream]} if stream in wanted else {}
    walk = _Walk({s: (n, h) for s, n, h in heads_qs.values_list("stream", "seq", "hash")}, wanted)
    archived_qs = ArchivedAuditRecord.objects.order_by("stream", "seq")
    if stream:
        archived_qs = archived_qs.filter(stream=stream)
    walk.load_redactions(qs)
    walk.load_redactions(archived_qs)
    # The live trail, then the archive: a stream is wholly in one of them (archive_items moves
    # whole streams), and the records keep their columns, hashes and links when they move.
    problem = _walk_chains(qs, walk, chunk_size)
    if not problem:
        live = walk.records
        problem = _walk_chains(_Rows(archived_qs), walk, chunk_size)
        walk.archived = walk.records - live
    if problem:
        return walk.report(checkpoint=checkpoint, **problem)
    for orphan in sorted(walk.heads):
        seq = walk.heads[orphan][0]
        reason = f"the stream has no records but its head is at seq {seq} (the stream was deleted)"
        return walk.report(stream=orphan, seq=seq, reason=reason, checkpoint=checkpoint)
    for name in sorted(wanted):
        if name not in walk.signed:
            reason = (
                f"the stream had seq {wanted[name]} at checkpoint {checkpoint.pk} "
                f"({isoformat_z(checkpoint.created_at)}) and that record is gone "
                "(the stream, or its end, was deleted with its head)"
            )
            return walk.report(stream=name, seq=wanted[name], reason=reason, checkpoint=checkpoint)
    if checkpoint and not stream:
        entries = [(s, n, walk.signed[s]) for s, n in wanted.items()]
        if not hmac.compare_digest(checkpoint_mac(checkpoint.created_at, entries), checkpoint.mac):
            reason = (
                f"checkpoint {checkpoint.pk} does not match its signature: the records it covers were "
                "rewritten, the checkpoint was altered, or it was signed with another key"
            )
            return walk.report(reason=reason, checkpoint=checkpoint)
    return walk.report(checkpoint=checkpoint)


# --- the access log ---------------------------------------------------------------------------


def access_log_purge(*, now=None, batch: int = 10_000) -> int:
    """Delete access records older than `accessLog.retentionDays`, in batches; returns how many."""
    cutoff = (now or timezone.now()) - timedelta(days=wsconfig.get().accessLog.retentionDays)
    removed = 0
    while ids := list(AccessRecord.objects.filter(at__lt=cutoff).order_by("at").values_list("id", flat=True)[:batch]):
        removed += AccessRecord.objects.filter(id__in=ids).delete()[0]
    return removed
