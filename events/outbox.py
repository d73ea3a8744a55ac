"""Writing outbox rows. Delivery (the relay) reads them; nothing here leaves the database
(the only thing that does, after commit, is a nudge that wakes the relay: events.nudge)."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from config import context, statements, tracing, wsconfig
from events import nudge
from events.models import OutboxEvent


def outbox_enqueue(**event) -> OutboxEvent:
    """Add one event to the outbox inside the current transaction (the change's own); the
    fields are `outbox_event`'s."""
    row = outbox_event(**event)
    row.save(force_insert=True)
    return row


def outbox_enqueue_into(batch: statements.Batch, **event) -> OutboxEvent:
    """`outbox_enqueue` whose INSERT goes into `batch`, sent with the change as one statement."""
    row = outbox_event(**event)
    batch.insert(OutboxEvent, [row])
    return row


def outbox_event(
    *,
    event_type: str,
    aggregate_id: str | int,
    sequence: int,
    payload: dict,
    aggregate_type: str = "workitem",
    correlation_id: str = "",
    occurred_at=None,
) -> OutboxEvent:
    """The unsaved outbox row of one event, and the relay's wake-up after the commit."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("outbox_enqueue must run inside the change's transaction")
    nudge.relay_after_commit()
    traceparent = tracing.traceparent_of()  # the change's span: the relay's publish continues it
    return OutboxEvent(
        event_type=event_type,
        aggregate_type=aggregate_type,
        aggregate_id=str(aggregate_id),
        sequence=sequence,
        occurred_at=occurred_at or timezone.now(),
        producer=wsconfig.get().eventBus.producer,
        # The W3C trace id when the change runs in a trace, else the request id (tracing off).
        trace_id=tracing.trace_id_of(traceparent) or context.current_request_id(),
        traceparent=traceparent,
        correlation_id=correlation_id or "",
        payload=payload,
    )
