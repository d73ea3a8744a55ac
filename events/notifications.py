"""The notification consumer's work: record each event once, by `event_id`.

The database row (unique `event_id`) is the record; the Redis key
`workstream:processed:<event_id>` (24 h) is written after the row commits and
lets redeliveries skip the database. Writing the key first would lose an event
whose insert then failed.
"""

from __future__ import annotations

import json
import logging
import uuid

from django.db import connection
from django.utils.dateparse import parse_datetime

from events.wakeup import redis_client

log = logging.getLogger(__name__)

TTL = 24 * 3600
RECORDED, DUPLICATE, INVALID = "recorded", "duplicate", "invalid"


def processed_key(event_id: str) -> str:
    return f"workstream:processed:{event_id}"


def record(body: bytes) -> str:
    """Record one event envelope: RECORDED, DUPLICATE or INVALID."""
    try:
        envelope = json.loads(body)
        event_id = str(uuid.UUID(str(envelope["event_id"])))
        event_type = str(envelope["event_type"])[:100]
    except (ValueError, KeyError, TypeError, AttributeError):
        return INVALID
    key = processed_key(event_id)
    try:
        if redis_client().exists(key):
            return DUPLICATE
    except Exception:  # noqa: BLE001 - the unique row still decides
        log.warning("processed-events fast path unavailable", exc_info=True)
    payload = envelope.get("payload") if isinstance(envelope.get("payload"), dict) else {}
    item = payload.get("work_item") if isinstance(payload.get("work_item"), dict) else {}
    aggregate_id = str(item.get("id") or payload.get("command_id") or "")[:64]
    sequence = envelope.get("sequence") if isinstance(envelope.get("sequence"), int) else None
    occurred = parse_datetime(envelope["occurred_at"]) if isinstance(envelope.get("occurred_at"), str) else None
    with connection.cursor() as cur:
        cur.execute(
            """
            INSERT INTO events_processedevent
              (event_id, event_type, aggregate_id, sequence, correlation_id, occurred_at, envelope, processed_at)
            VALUES (%s, %s, %s, %s, %s, %s, %s::jsonb, now())
            ON CONFLICT (event_id) DO NOTHING
            RETURNING id
            """,
            [
                event_id,
                event_type,
                aggregate_id,
                sequence,
                str(envelope.get("correlation_id") or "")[:200],
                occurred,
                json.dumps(envelope),
            ],
        )
        inserted = cur.fetchone() is not None
    try:
        redis_client().set(key, b"1", ex=TTL)
    except Exception:  # noqa: BLE001
        log.warning("could not record event %s in the fast path", event_id, exc_info=True)
    return RECORDED if inserted else DUPLICATE
