"""Celery tasks of event delivery: the relay and the webhook sender, nudged on commit and run by beat.

Both are safe to run concurrently with each other and with `manage.py
relay_outbox` (rows are taken with SKIP LOCKED; see events.relay for order).
Each runs for a bounded time, well inside the task time limit and the Redis
visibility timeout, and queues a follow-up when work is left.
"""

from __future__ import annotations

import logging
import time

from celery import shared_task
from django.conf import settings

from config import partitions, wsconfig
from events import metrics, relay, wakeup, webhooks
from events.bus import BrokerUnavailable, ConfirmingPublisher

log = logging.getLogger(__name__)

_publisher: ConfirmingPublisher | None = None


def _budget() -> float:
    # A third of the hard time limit: the task ends on its own long before Celery would kill it.
    return max(5.0, settings.CELERY_TASK_TIME_LIMIT / 3)


def _shared_publisher() -> ConfirmingPublisher:
    """One publisher (one connection) per worker process, reused across tasks.

    No AMQP heartbeats: nothing would send them between tasks, and the broker would
    close the idle connection; a dead connection shows on the next publish instead.
    """
    global _publisher
    if _publisher is None:
        _publisher = ConfirmingPublisher(heartbeat=0)
    return _publisher


@shared_task(name="events.relay_outbox", acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def relay_outbox() -> int:
    """Drain the outbox (nudged after commits; every 10 s from beat)."""
    if not relay.publishing_enabled():
        wakeup.clear(wakeup.relay_queued_key())
        return 0
    deadline = time.monotonic() + _budget()
    created_deliveries = False

    def on_batch(result):
        nonlocal created_deliveries
        created_deliveries = created_deliveries or bool(result.deliveries)

    publisher = _shared_publisher()
    try:
        if not publisher.connected:
            # Connecting declares the exchange: beat's first run, seconds after the start, does it
            # before any event, as relay_outbox does when it starts.
            publisher.connect()
        try:
            total = relay.relay_drain(publisher, deadline=deadline, on_batch=on_batch)
        except BrokerUnavailable:
            # Often just the connection kept from an earlier task, gone stale: one fresh try.
            publisher.close()
            total = relay.relay_drain(publisher, deadline=deadline, on_batch=on_batch)
        if time.monotonic() >= deadline:
            relay_outbox.apply_async()  # work left: a fresh task (the nudge key stays set)
        else:
            # Clear the debounce key, then look once more: a commit that saw the key set
            # (and so queued nothing) committed before this pass starts.
            wakeup.clear(wakeup.relay_queued_key())
            total += relay.relay_drain(publisher, deadline=time.monotonic() + 5, on_batch=on_batch)
    except BrokerUnavailable as exc:
        metrics.RELAY_BROKER_ERRORS.inc()
        wakeup.clear(wakeup.relay_queued_key())
        log.warning("event bus unavailable (%s); beat retries in a few seconds", exc)
        return 0
    if created_deliveries:
        wake_webhooks()
    return total


@shared_task(name="events.deliver_webhooks", acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def deliver_webhooks() -> int:
    """Send due webhook and callback deliveries (nudged by the relay; every 5 s from beat)."""
    deadline = time.monotonic() + _budget()
    total = webhooks.deliver_until_idle(deadline=deadline)
    if time.monotonic() >= deadline:
        deliver_webhooks.apply_async()
    else:
        wakeup.clear(wakeup.webhooks_queued_key())
        total += webhooks.deliver_until_idle(deadline=time.monotonic() + 5)
    return total


@shared_task(name="events.purge_published", acks_late=True, ignore_result=True)
def purge_published() -> int:
    """Delete published outbox rows past `relay.retainPublishedDays` (daily). A partitioned outbox
    (PostgreSQL) loses its old months by dropping them (`partitions.maintain`, the beat job
    `partitions-maintain`): only its DEFAULT partition is purged row by row here."""
    if partitions.is_partitioned(partitions.OUTBOX):
        return relay.purge_published(table=f"{partitions.OUTBOX}_default")
    return relay.purge_published()


def wake_webhooks() -> None:
    """After the relay created deliveries (Celery mode; the relay process wakes its own sender)."""
    if wsconfig.get().relay.nudge != "celery":
        return
    try:
        wakeup.debounced(deliver_webhooks, wakeup.webhooks_queued_key())
    except Exception:  # noqa: BLE001
        log.warning("could not nudge the webhook sender; the safety net will pick the deliveries up", exc_info=True)
