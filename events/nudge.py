"""Waking the relay and the webhook sender after a commit.

A nudge is only a wake-up call: the outbox row is already committed, and the
Celery beat safety net (or the relay process's own poll) finds it even when a
nudge is lost (`on_commit(task.delay)` alone is not an outbox: a crash or a broker
outage between the commit and the publish would lose the message).

`relay.nudge` chooses what a commit wakes:
- `celery`: the `events.relay_outbox` task, debounced through a Redis key so a
  burst of commits queues one task, not thousands. The task clears the key
  before its last pass, so a commit that found the key set is still picked up.
- `process`: `manage.py relay_outbox`, listening on a Redis pub/sub channel.
- `none`: nothing; the relay polls.
"""

from __future__ import annotations

import logging

from django.db import transaction

from config import wsconfig
from events import tasks
from events.wakeup import debounced, redis_client, relay_channel, relay_queued_key, webhooks_queued_key

__all__ = [
    "redis_client",
    "relay_after_commit",
    "relay_channel",
    "relay_queued_key",
    "wake_relay",
    "webhooks_queued_key",
]

log = logging.getLogger(__name__)


def relay_after_commit() -> None:
    """Wake the relay once when the current transaction commits (several events, one nudge)."""
    if not wsconfig.get().features.events.publish or wsconfig.get().relay.nudge == "none":
        return
    conn = transaction.get_connection()
    if any(entry[1] is wake_relay for entry in conn.run_on_commit):
        return
    transaction.on_commit(wake_relay, robust=True)


def wake_relay() -> None:
    mode = wsconfig.get().relay.nudge
    try:
        if mode == "process":
            redis_client().publish(relay_channel(), b"1")
        elif mode == "celery":
            debounced(tasks.relay_outbox, relay_queued_key())
    except Exception:  # noqa: BLE001 - the row is committed; beat or the poll will find it
        log.warning("could not nudge the outbox relay; the safety net will pick the event up", exc_info=True)
