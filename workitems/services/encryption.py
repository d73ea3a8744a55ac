"""Encrypted context keys: re-encryption under the key ring's primary key (`manage.py
rotate_context_keys`). Creates seal the values (create.py, workitems.crypto)."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db import transaction

from archive.models import ArchivedWorkItem
from audit.services import audit_record
from config import context
from workitems import crypto
from workitems.errors import EncryptionUnavailable
from workitems.models import Queue, WorkItem

ROTATION_STREAM = "system:context-keys"
ROTATION_ACTION = "context_keys.rotated"


@dataclass
class RotationReport:
    key_id: str
    dry_run: bool
    live_items: list[int] = field(default_factory=list)
    archived_items: list[int] = field(default_factory=list)
    batches: int = 0

    def as_dict(self) -> dict:
        return self.__dict__.copy()


def context_keys_rotate(*, batch_size: int = 500, dry_run: bool = False) -> RotationReport:
    """Seal every encrypted context value of live and archived items under the ring's primary key:
    values sealed with another key are decrypted and encrypted again, clear values of keys their
    queue now lists in `encrypted_keys` are sealed. One transaction per batch of `batch_size`
    items, each re-read under its row lock, and one audit record per batch (stream
    `system:context-keys`, as the system) naming the items and the keys, never a value. With
    `dry_run` nothing is written; the report names what would change. EncryptionUnavailable
    when a value does not decrypt (the batch is not written; the ones before it stay done)."""
    ring = crypto.key_ring()
    if ring is None:
        raise EncryptionUnavailable(
            "no context key ring is configured (WORKSTREAM_CONTEXT_KEYS or WORKSTREAM_CONTEXT_KEYS_FILE)"
        )
    report = RotationReport(key_id=ring.primary, dry_run=dry_run)
    listed = {pk: keys for pk, keys in Queue.objects.values_list("pk", "encrypted_keys") if keys}
    for archived, ids in _batches(listed, batch_size, ring):
        done = ids if dry_run else _rotate_batch(archived, ids, listed, ring)
        (report.archived_items if archived else report.live_items).extend(done)
        report.batches += 1 if done else 0
    return report


def _pending(item_id: int, data, keys: list[str], ring) -> bool:
    """Whether the item's context has a value to seal again or to seal."""
    if not isinstance(data, dict):
        return False
    return any(crypto.key_id_of(v) != ring.primary if crypto.is_sealed(v) else k in keys for k, v in data.items())


def _batches(listed: dict, batch_size: int, ring):
    """(archived, [ids]) of at most `batch_size` items with something to do, read in id order
    without locks (each batch is locked and read again when it is written)."""
    for archived, model in ((False, WorkItem), (True, ArchivedWorkItem)):
        last, found = 0, []
        while True:
            rows = model.objects.filter(pk__gt=last).order_by("pk")
            if archived:
                page = [
                    (pk, r.get("queue_id"), r.get("context_data"))
                    for pk, r in rows.values_list("pk", "row")[:batch_size]
                ]
            else:
                page = list(rows.values_list("pk", "queue_id", "context_data")[:batch_size])
            if not page:
                break
            last = page[-1][0]
            found.extend(pk for pk, queue_id, data in page if _pending(pk, data, listed.get(queue_id, []), ring))
            while len(found) >= batch_size:
                yield archived, found[:batch_size]
                found = found[batch_size:]
        if found:
            yield archived, found


@transaction.atomic
def _rotate_batch(archived: bool, ids: list[int], listed: dict, ring) -> list[int]:
    model = ArchivedWorkItem if archived else WorkItem
    rows = list(model.objects.select_for_update().filter(pk__in=ids).order_by("pk"))
    changed, keys_changed = [], set()
    for row in rows:
        data = row.row.get("context_data") if archived else row.context_data
        queue_id = row.row.get("queue_id") if archived else row.queue_id
        if not isinstance(data, dict):
            continue
        sealed, keys = crypto.reseal(row.pk, data, listed.get(queue_id, []), ring)
        if not keys:
            continue  # changed since the scan
        if archived:
            row.row = {**row.row, "context_data": sealed}
        else:
            row.context_data = sealed
        changed.append(row)
        keys_changed.update(keys)
    if not changed:
        return []
    model.objects.bulk_update(changed, ["row"] if archived else ["context_data"])
    with context.acting(channel="system"):
        audit_record(
            stream=ROTATION_STREAM,
            action=ROTATION_ACTION,
            actor=None,
            data={
                "key_id": ring.primary,
                "archived": archived,
                "items": [r.pk for r in changed],
                "keys": sorted(keys_changed),
            },
        )
    return [r.pk for r in changed]
