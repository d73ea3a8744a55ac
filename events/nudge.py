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
import threading

from django.conf import settings
from django.db import connection, transaction

from config import wsconfig

log = logging.getLogger(__name__)

DEBOUNCE_MS = 60_000  # a queued task that never ran stops suppressing nudges after this

_redis_client = None
_redis_lock = threading.Lock()


def redis_client():
    """A shared Redis client with short timeouts: a nudge must never hold up a request."""
    global _redis_client
    if _redis_client is None:
        import redis

        with _redis_lock:
            if _redis_client is None:
                _redis_client = redis.Redis.from_url(
                    settings.REDIS_URL, socket_timeout=1, socket_connect_timeout=1, health_check_interval=30
                )
    return _redis_client


def _scope() -> str:
    # One relay per database: keys and channels are scoped by it, so two deployments
    # (or two test runs) sharing a Redis do not wake each other.
    return str(connection.settings_dict.get("NAME") or "default")


def relay_channel() -> str:
    return f"workstream:outbox:nudge:{_scope()}"


def relay_queued_key() -> str:
    return f"workstream:relay:queued:{_scope()}"


def webhooks_queued_key() -> str:
    return f"workstream:webhooks:queued:{_scope()}"


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
            from events import tasks

            _debounced(tasks.relay_outbox, relay_queued_key())
    except Exception:  # noqa: BLE001 - the row is committed; beat or the poll will find it
        log.warning("could not nudge the outbox relay; the safety net will pick the event up", exc_info=True)


def wake_webhooks() -> None:
    """After the relay created deliveries (Celery mode; the relay process wakes its own sender)."""
    if wsconfig.get().relay.nudge != "celery":
        return
    try:
        from events import tasks

        _debounced(tasks.deliver_webhooks, webhooks_queued_key())
    except Exception:  # noqa: BLE001
        log.warning("could not nudge the webhook sender; the safety net will pick the deliveries up", exc_info=True)


def _debounced(task, key: str) -> None:
    if settings.CELERY_TASK_ALWAYS_EAGER:
        task.apply()  # `make run`: no broker, the task runs here
        return
    client = redis_client()
    if not client.set(key, b"1", nx=True, px=DEBOUNCE_MS):
        return  # a task is queued or running; it clears the key before its final pass
    try:
        task.apply_async()
    except Exception:
        client.delete(key)
        raise


def clear(key: str) -> None:
    """Called by the task before its final pass: later commits queue a new task."""
    try:
        redis_client().delete(key)
    except Exception:  # noqa: BLE001 - at worst the next nudge waits for the key to expire
        log.warning("could not clear the nudge key %s", key, exc_info=True)
