"""The outbox relay: outbox rows → RabbitMQ (confirmed) → marked published, and webhook deliveries queued.

One batch is one database transaction:

1. take up to `performance.outboxBatchSize` due rows `FOR UPDATE SKIP LOCKED`,
   only the *oldest pending event of each aggregate* (see below);
2. publish them to the topic exchange (routing key = event type, persistent)
   and wait for the broker's confirms of the whole batch;
3. mark the confirmed rows published, count an attempt on the nacked ones
   (exponential backoff; dead-lettered after `eventBus.maxPublishAttempts`),
   and create the webhook/callback deliveries of the published ones;
4. commit.

A crash anywhere before 4 leaves the rows unpublished, so they are sent again:
at-least-once, and a duplicate carries the same `event_id`. A broker that cannot
be reached (or does not confirm in time) aborts the batch without counting an
attempt: an outage must not dead-letter events.

Per-item order. The row locks alone do not keep an item's events in order when
two relays run: relay A holds item 7's event #1 while relay B, skipping the
locked row, would take #2 and could publish it first. So a row is taken only if
no earlier event of its aggregate is still pending (the `min(sequence)` below): B sees
#1 unpublished (A has not committed) and leaves #2 alone. An item's next event
is therefore only ever taken after the previous one is confirmed and committed,
which also means one event per aggregate per batch. A dead-lettered event stops
blocking its successors (consumers see the gap in `sequence`); replaying it
later delivers it out of order, which `sequence` makes visible.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from django.core.exceptions import ImproperlyConfigured
from django.db import connection, transaction
from django.utils import timezone
from opentelemetry.trace import SpanKind

from config import tracing, wsconfig
from config.timefmt import isoformat_z
from events import metrics
from events.bus import ChannelFailed, ConfirmingPublisher, OutgoingMessage
from events.models import Delivery, OutboxEvent, Subscription

log = logging.getLogger(__name__)

# The events an item's `callback_url` receives: the item is finished, one way or another.
CALLBACK_EVENT_TYPES = frozenset(
    {"workitem.completed.v1", "workitem.failed.v1", "workitem.cancelled.v1", "workitem.skipped.v1"}
)

_COLUMNS = (
    "o.id, o.event_id, o.event_type, o.aggregate_type, o.aggregate_id, o.sequence, o.occurred_at, "
    "o.producer, o.trace_id, o.correlation_id, o.payload::text, o.attempts, "
    "o.payload #>> '{work_item,callback_url}', o.traceparent"
)

_BATCH_SQL = f"""
SELECT {_COLUMNS}
FROM events_outboxevent o
WHERE o.published_at IS NULL AND o.dead_lettered_at IS NULL
  AND (o.next_attempt_at IS NULL OR o.next_attempt_at <= %(now)s)
  AND o.sequence = (
    -- A correlated subquery runs as a parameterised probe of the small pending-rows
    -- index per candidate, whatever the planner's statistics say (a NOT EXISTS here
    -- was planned as a scan of that whole index per row right after a bulk insert).
    SELECT min(p.sequence) FROM events_outboxevent p
    WHERE p.aggregate_type = o.aggregate_type AND p.aggregate_id = o.aggregate_id
      AND p.published_at IS NULL AND p.dead_lettered_at IS NULL)
ORDER BY o.id
LIMIT %(limit)s
FOR UPDATE OF o SKIP LOCKED
"""

_FAIL_SQL = """
UPDATE events_outboxevent
SET attempts = attempts + 1,
    last_error = %(error)s,
    next_attempt_at = %(now)s + make_interval(secs => LEAST(%(max)s, %(base)s * power(2, attempts))),
    dead_lettered_at = CASE WHEN attempts + 1 >= %(limit)s THEN %(now)s END
WHERE id = ANY(%(ids)s)
RETURNING id, dead_lettered_at IS NOT NULL
"""


@dataclass
class Row:
    """An outbox row as the relay reads it (the payload stays JSON text: no parse, no re-dump)."""

    id: int
    event_id: str
    event_type: str
    aggregate_type: str
    aggregate_id: str
    sequence: int
    occurred_at: object
    producer: str
    trace_id: str
    correlation_id: str
    payload_text: str
    attempts: int
    callback_url: str | None
    traceparent: str

    @classmethod
    def from_db(cls, r) -> Row:
        return cls(r[0], str(r[1]), *r[2:])

    def body(self) -> bytes:
        """The envelope, as `OutboxEvent.envelope()` has it, serialized."""
        head = json.dumps(
            {
                "event_id": self.event_id,
                "event_type": self.event_type,
                "occurred_at": isoformat_z(self.occurred_at),
                "producer": self.producer,
                "trace_id": self.trace_id,
                "correlation_id": self.correlation_id,
                "sequence": self.sequence,
            },
            separators=(",", ":"),
        )
        return f'{head[:-1]},"payload":{self.payload_text}}}'.encode()

    def message(self, traceparent: str | None = None) -> OutgoingMessage:
        """The AMQP message; `traceparent` (the publish span's) replaces the stored one in the headers."""
        headers = {
            "aggregate_type": self.aggregate_type,
            "aggregate_id": self.aggregate_id,
            "sequence": self.sequence,
        }
        if traceparent or self.traceparent:
            headers["traceparent"] = traceparent or self.traceparent
        return OutgoingMessage(
            routing_key=self.event_type,
            body=self.body(),
            message_id=self.event_id,
            type=self.event_type,
            correlation_id=self.correlation_id,
            timestamp=int(self.occurred_at.timestamp()),
            app_id=self.producer,
            headers=headers,
        )


@dataclass
class BatchResult:
    """What one batch did."""

    taken: int = 0
    published: int = 0
    failed: int = 0
    dead_lettered: int = 0
    deliveries: int = 0
    published_ids: list[int] = field(default_factory=list)


def _require_postgresql() -> None:
    if connection.vendor != "postgresql":
        raise ImproperlyConfigured("the outbox relay needs PostgreSQL (FOR UPDATE SKIP LOCKED)")


def fetch_batch(limit: int) -> list[Row]:
    """Lock and return up to `limit` due rows, heads of their aggregates only. Call inside a transaction."""
    with connection.cursor() as cur:
        cur.execute(_BATCH_SQL, {"now": timezone.now(), "limit": limit})
        return [Row.from_db(r) for r in cur.fetchall()]


def rows_by_event_ids(ids: list[int]) -> dict[int, Row]:
    """Rows by outbox id, for the webhook sender (same envelope bytes as the bus got)."""
    with connection.cursor() as cur:
        cur.execute(f"SELECT {_COLUMNS} FROM events_outboxevent o WHERE o.id = ANY(%s)", [ids])
        return {r[0]: Row.from_db(r) for r in cur.fetchall()}


def _record_failures(rows: list[Row], error: str, now) -> int:
    cfg = wsconfig.get()
    with connection.cursor() as cur:
        cur.execute(
            _FAIL_SQL,
            {
                "error": error[:2000],
                "now": now,
                "max": float(cfg.relay.retryMaxSeconds),
                "base": float(cfg.relay.retryBaseSeconds),
                "limit": cfg.eventBus.maxPublishAttempts,
                "ids": [r.id for r in rows],
            },
        )
        dead = [row_id for row_id, is_dead in cur.fetchall() if is_dead]
    if dead:
        log.error("dead-lettered %d outbox event(s) after repeated publish failures: %s", len(dead), error)
    return len(dead)


def _fan_out(rows: list[Row], now) -> int:
    """Queue the webhook deliveries (matching subscriptions) and callbacks of published rows."""
    subs = list(
        Subscription.objects.filter(active=True, deleted_at__isnull=True).values_list("id", "url", "event_types")
    )
    deliveries = []
    for row in rows:
        for sub_id, url, types in subs:
            if row.event_type in types:
                deliveries.append(
                    Delivery(
                        kind=Delivery.WEBHOOK,
                        subscription_id=sub_id,
                        event_id=row.id,
                        event_type=row.event_type,
                        url=url,
                        next_attempt_at=now,
                        created_at=now,
                    )
                )
        if row.callback_url and row.event_type in CALLBACK_EVENT_TYPES:
            deliveries.append(
                Delivery(
                    kind=Delivery.CALLBACK,
                    event_id=row.id,
                    event_type=row.event_type,
                    url=row.callback_url,
                    next_attempt_at=now,
                    created_at=now,
                )
            )
    if deliveries:
        Delivery.objects.bulk_create(deliveries)
    return len(deliveries)


def _publish_spans(rows: list[Row], exchange: str) -> list:
    """One PRODUCER span per event, each a child of the trace context its outbox row kept."""
    return [
        tracing.start_span(
            f"{exchange} publish",
            parent=r.traceparent,
            kind=SpanKind.PRODUCER,
            attributes={
                "messaging.system": "rabbitmq",
                "messaging.operation.type": "send",
                "messaging.destination.name": exchange,
                "messaging.rabbitmq.destination.routing_key": r.event_type,
                "messaging.message.id": r.event_id,
                "workstream.outbox.id": r.id,
            },
        )
        for r in rows
    ]


def relay_batch(publisher: ConfirmingPublisher, *, batch_size: int | None = None) -> BatchResult:
    """Publish one batch (see the module docstring). Raises BrokerUnavailable with nothing changed."""
    _require_postgresql()
    limit = batch_size or wsconfig.get().performance.outboxBatchSize
    result = BatchResult()
    t0 = time.perf_counter()
    with transaction.atomic():
        rows = fetch_batch(limit)
        result.taken = len(rows)
        if not rows:
            return result
        if tracing.enabled():
            spans = _publish_spans(rows, publisher.exchange)
            messages = [r.message(tracing.traceparent_of(s)) for r, s in zip(rows, spans, strict=True)]
        else:
            spans, messages = [], [r.message() for r in rows]
        try:
            outcomes = publisher.publish_batch(messages)
        except ChannelFailed as exc:
            outcomes = [str(exc)] * len(rows)
        except BaseException as exc:
            for span in spans:
                tracing.end_span(span, f"{type(exc).__name__}: {exc}")
            raise
        for span, err in zip(spans, outcomes, strict=False):
            tracing.end_span(span, err)
        now = timezone.now()
        ok = [r for r, err in zip(rows, outcomes, strict=True) if err is None]
        failed = [(r, err) for r, err in zip(rows, outcomes, strict=True) if err is not None]
        if ok:
            with connection.cursor() as cur:
                cur.execute(
                    "UPDATE events_outboxevent SET published_at = %s, next_attempt_at = NULL WHERE id = ANY(%s)",
                    [now, [r.id for r in ok]],
                )
            result.deliveries = _fan_out(ok, now)
        if failed:
            result.dead_lettered = _record_failures([r for r, _ in failed], failed[0][1], now)
        result.published, result.failed = len(ok), len(failed)
        result.published_ids = [r.id for r in ok]
    metrics.OUTBOX_PUBLISHED.inc(result.published)
    if result.failed:
        metrics.OUTBOX_PUBLISH_FAILURES.inc(result.failed)
    if result.dead_lettered:
        metrics.OUTBOX_DEAD_LETTERED.inc(result.dead_lettered)
    metrics.RELAY_BATCH_SECONDS.observe(time.perf_counter() - t0)
    return result


def relay_drain(
    publisher: ConfirmingPublisher,
    *,
    deadline: float | None = None,
    batch_size: int | None = None,
    on_batch: Callable[[BatchResult], None] | None = None,
) -> int:
    """Publish batches until none is due (or `deadline`, a monotonic time, passes). Returns events published."""
    total = 0
    while deadline is None or time.monotonic() < deadline:
        result = relay_batch(publisher, batch_size=batch_size)
        total += result.published
        if on_batch is not None:
            on_batch(result)
        if result.taken == 0:
            break
    return total


def publishing_enabled() -> bool:
    return bool(wsconfig.get().features.events.publish)


def replay_dead_events(*, ids: list[int] | None = None, event_type: str | None = None) -> int:
    """Put dead-lettered events back in line (attempts reset). Returns how many."""
    qs = OutboxEvent.objects.filter(dead_lettered_at__isnull=False, published_at__isnull=True)
    if ids:
        qs = qs.filter(id__in=ids)
    if event_type:
        qs = qs.filter(event_type=event_type)
    count = qs.update(dead_lettered_at=None, attempts=0, next_attempt_at=None)
    if count:
        log.info("replaying %d dead-lettered outbox event(s)", count)
    return count


def purge_published(*, older_than_days: int | None = None, chunk: int = 5000, table: str = "events_outboxevent") -> int:
    """Delete published rows (and their finished deliveries) older than the retention, in chunks.

    `table` may name one partition of the outbox (the daily job passes the DEFAULT one when the
    outbox is partitioned: the monthly ones are dropped whole, config/partitions.py)."""
    _require_postgresql()
    if table != "events_outboxevent":
        with connection.cursor() as cur:
            cur.execute(
                "SELECT EXISTS (SELECT 1 FROM pg_inherits WHERE inhrelid = to_regclass(%s) "
                "AND inhparent = 'events_outboxevent'::regclass)",
                [table],
            )
            if not cur.fetchone()[0]:
                raise ValueError(f"not the outbox or one of its partitions: {table}")
    days = older_than_days or wsconfig.get().relay.retainPublishedDays
    cutoff = timezone.now() - timedelta(days=days)
    total = 0
    with connection.cursor() as cur:
        # A disabled subscription's deliveries wait for it to be re-enabled, but not forever.
        cur.execute(
            """
            UPDATE events_delivery d
            SET status = 'failed', last_error = 'abandoned: the subscription stayed disabled past the retention'
            FROM events_subscription s
            WHERE d.subscription_id = s.id AND NOT s.active AND d.status = 'pending' AND d.created_at < %s
            """,
            [cutoff],
        )
    while True:
        with transaction.atomic(), connection.cursor() as cur:
            # Rows whose deliveries are still pending stay (the sender needs the envelope);
            # finished deliveries go with their event.
            cur.execute(
                f"""
                WITH old AS (
                  SELECT o.id FROM {table} o
                  WHERE o.published_at < %s
                    AND NOT EXISTS (SELECT 1 FROM events_delivery d WHERE d.event_id = o.id AND d.status = 'pending')
                  LIMIT %s),
                gone AS (DELETE FROM events_delivery d USING old WHERE d.event_id = old.id)
                DELETE FROM {table} o USING old WHERE o.id = old.id
                """,
                [cutoff, chunk],
            )
            deleted = cur.rowcount
        total += deleted
        if deleted < chunk:
            return total
