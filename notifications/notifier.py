"""The notifier: read new outbox rows in id order and write what they tell (idempotently).

Outbox ids are taken when a change inserts its event, not when it commits, so a row with
a lower id may become visible after a higher one. The notifier keeps a cursor
(`NotifierCursor`, one row locked FOR UPDATE: two notifiers take turns, neither reads a
row twice at once): `last_id` (everything up to it is done), `scanned_to` (the highest id
handled) and the gaps between them. A gap is looked for again on every run and dropped only
when no transaction that was open when the gap was first seen is still open
(pg_stat_activity): then its id was rolled back and will never come. This is exact, costs
no waiting on the normal path (rows after a gap are handled at once; only `last_id` holds)
and needs nothing of the relay. Handling a row twice is harmless: Notification is unique
per (event, recipient), NotificationDelivery per (event, recipient, channel), and both
are inserted with ON CONFLICT DO NOTHING in the cursor's transaction.
"""

from __future__ import annotations

import logging
from datetime import datetime

from django.db import connection, transaction
from django.utils import timezone

from config import wsconfig
from events.models import OutboxEvent
from notifications import channels
from notifications import models as m
from notifications.triggers import CHANNEL_TRIGGERS, PAGED_TRIGGERS, Told, told_by
from workitems.models import Queue

log = logging.getLogger(__name__)


def _oldest_open_transaction() -> datetime | None:
    """When the oldest other open transaction on this database began (None: none, or not PostgreSQL).

    The first read of pg_stat_activity in a transaction is the one it keeps: call this first."""
    if connection.vendor != "postgresql":
        return None  # SQLite (make run): one writer at a time, ids commit in order
    with connection.cursor() as cur:
        cur.execute(
            "SELECT min(xact_start) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid() AND xact_start IS NOT NULL"
        )
        return cur.fetchone()[0]


def _db_now() -> datetime:
    """The database's clock (what pg_stat_activity's xact_start is measured by)."""
    if connection.vendor != "postgresql":
        return timezone.now()
    with connection.cursor() as cur:
        cur.execute("SELECT clock_timestamp()")
        return cur.fetchone()[0]


def _email_wanted(user_ids: list[int], trigger: str) -> set[int]:
    prefs = dict(m.NotificationPreference.objects.filter(user_id__in=user_ids).values_list("user_id", "email"))
    return {uid for uid in user_ids if (prefs.get(uid) or {}).get(trigger, True) is not False}


def write(event_id, told: Told) -> None:
    """The rows of one notification: in-app per user, a delivery per (recipient, channel);
    each unique, so writing twice writes nothing more. A queue's alert goes where the
    queue's `channels` say (channels.routes)."""
    alert = told.trigger in CHANNEL_TRIGGERS
    queue = Queue.objects.filter(name=told.queue).first() if alert and told.queue else None
    people, posts = channels.routes(told.trigger, queue, alert=alert, paged=told.trigger in PAGED_TRIGGERS)
    common = {"event_id": event_id, "kind": told.trigger, "title": told.title, "body": told.body}
    common.update(work_item_id=told.work_item_id, queue=told.queue)
    if m.IN_APP in people and told.users:
        m.Notification.objects.bulk_create(
            [m.Notification(recipient_id=uid, **common) for uid in told.users], ignore_conflicts=True
        )
    rows = []
    if m.EMAIL in people and told.users:
        for uid in sorted(_email_wanted(list(told.users), told.trigger)):
            rows.append(m.NotificationDelivery(channel=m.EMAIL, recipient=told.users[uid], user_id=uid, **common))
    rows += [m.NotificationDelivery(channel=channel, recipient=label, **common) for channel, label in posts]
    if rows:
        m.NotificationDelivery.objects.bulk_create(rows, ignore_conflicts=True)


def _handle(events) -> None:
    for event in events:
        told = told_by(event)
        if told is not None:
            write(event.event_id, told)


def _gaps_between(low: int, ids: list[int], seen_at: str) -> list[list]:
    """The runs of ids missing between `low` (exclusive) and each of `ids` (sorted)."""
    gaps, prev = [], low
    for i in ids:
        if i > prev + 1:
            gaps.append([prev + 1, i - 1, seen_at])
        prev = i
    return gaps


def _revisit(gaps: list[list], oldest_open) -> list[list]:
    """Handle the rows of known gaps that have appeared; keep what is still missing and may come."""
    kept = []
    for low, high, seen_at in gaps:
        found = list(OutboxEvent.objects.filter(id__gte=low, id__lte=high).order_by("id"))
        _handle(found)
        if oldest_open is None or oldest_open > datetime.fromisoformat(seen_at):
            continue  # every transaction open when it was seen has ended: the rest rolled back
        ids = [e.id for e in found]
        kept.extend(_gaps_between(low - 1, [*ids, high + 1], seen_at))
    return kept


def notify_pending(*, batch: int | None = None) -> int:
    """One pass of the notifier: returns how many new outbox rows it read."""
    batch = batch or wsconfig.get().notifications.batchSize
    m.NotifierCursor.objects.get_or_create(pk=1)
    with transaction.atomic():
        cursor = m.NotifierCursor.objects.select_for_update().get(pk=1)
        oldest_open = _oldest_open_transaction()
        gaps = _revisit(cursor.gaps, oldest_open)
        events = list(OutboxEvent.objects.filter(id__gt=cursor.scanned_to).order_by("id")[:batch])
        # Taken after the read: a transaction holding a missing id below a row just read began
        # before that row's id was taken, so before this moment.
        seen_at = _db_now()
        _handle(events)
        if events:
            gaps += _gaps_between(cursor.scanned_to, [e.id for e in events], seen_at.isoformat())
            cursor.scanned_to = events[-1].id
        cursor.gaps = gaps
        cursor.last_id = min(g[0] for g in gaps) - 1 if gaps else cursor.scanned_to
        cursor.updated_at = timezone.now()
        cursor.save()
    return len(events)


def notify_until_idle(*, max_rounds: int = 100) -> int:
    total = 0
    for _ in range(max_rounds):
        n = notify_pending()
        total += n
        if n == 0:
            break
    return total
