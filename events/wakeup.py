"""Wake-up plumbing shared by the commit nudges (events.nudge) and the tasks they wake
(events.tasks): the Redis client, the keys and channels scoped per database, and the
debounced enqueue of a task."""

from __future__ import annotations

import logging
import threading

import redis
from django.conf import settings
from django.db import connection

log = logging.getLogger(__name__)

DEBOUNCE_MS = 60_000  # a queued task that never ran stops suppressing nudges after this

_redis_client = None
_redis_lock = threading.Lock()


def redis_client():
    """A shared Redis client with short timeouts: a nudge must never hold up a request."""
    global _redis_client
    if _redis_client is None:
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


def debounced(task, key: str) -> None:
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
