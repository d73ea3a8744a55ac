"""`manage.py relay_outbox`: the relay as a process of its own.

Drains the outbox in batches; when nothing is due it sleeps until a commit
nudges it (Redis pub/sub, `relay.nudge: process`) or `relay.pollSeconds` pass
(retries falling due, nudges lost). A broker outage is waited out with
exponential backoff (the rows simply stay unpublished). A second thread sends
the webhook deliveries the relay queues.
"""

from __future__ import annotations

import logging
import threading
import time

from django.db import InterfaceError, OperationalError, close_old_connections, connection

from config import wsconfig
from events import metrics, nudge, relay, webhooks
from events.bus import BrokerUnavailable, ConfirmingPublisher

log = logging.getLogger(__name__)

MAX_BACKOFF = 10.0  # seconds between reconnection attempts at most: cheap, and recovery stays quick


class _Wakeup:
    """Wait for a nudge on the Redis channel, or a timeout; degrades to plain sleeping without Redis."""

    def __init__(self, channel: str):
        self.channel = channel
        self.pubsub = None

    def subscribe(self) -> None:
        try:
            self.pubsub = nudge.redis_client().pubsub(ignore_subscribe_messages=True)
            self.pubsub.subscribe(self.channel)
        except Exception:  # noqa: BLE001 - polling still works
            log.warning("cannot subscribe to relay nudges; polling only", exc_info=True)
            self.pubsub = None

    def wait(self, timeout: float, stop: threading.Event) -> None:
        if self.pubsub is None:
            self.subscribe()
        if self.pubsub is None:
            stop.wait(timeout)
            return
        deadline = time.monotonic() + timeout
        try:
            while not stop.is_set():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                if self.pubsub.get_message(timeout=min(remaining, 0.5)) is not None:
                    # Drain whatever else arrived: one pass of the relay serves them all.
                    while self.pubsub.get_message(timeout=0) is not None:
                        pass
                    return
        except Exception:  # noqa: BLE001
            log.warning("relay nudge channel failed; resubscribing", exc_info=True)
            self.close()

    def close(self) -> None:
        if self.pubsub is not None:
            try:
                self.pubsub.close()
            except Exception:  # noqa: BLE001
                log.debug("closing the nudge subscription failed", exc_info=True)
        self.pubsub = None


class RelayProcess:
    """The relay loop (and its webhook sender thread)."""

    def __init__(
        self,
        *,
        batch_size: int | None = None,
        workers: int | None = None,
        webhooks_enabled: bool = True,
        stop: threading.Event | None = None,
    ):
        self.batch_size = batch_size
        self.workers = workers or wsconfig.get().relay.workers
        self.webhooks_enabled = webhooks_enabled
        self.stop = stop or threading.Event()
        self.published = 0
        self._lock = threading.Lock()
        self._deliveries = threading.Event()
        self._webhook_thread: threading.Thread | None = None

    def _on_batch(self, result: relay.BatchResult) -> None:
        with self._lock:
            self.published += result.published
        if result.deliveries:
            self._deliveries.set()

    def _webhook_loop(self) -> None:
        poll = float(wsconfig.get().relay.pollSeconds)
        try:
            while not self.stop.is_set():
                try:
                    webhooks.deliver_until_idle(deadline=time.monotonic() + 30)
                except (OperationalError, InterfaceError):
                    log.warning("database unavailable for the webhook sender", exc_info=True)
                    connection.close()
                except Exception:
                    log.exception("webhook sender failed; continuing")
                self._deliveries.wait(poll)
                self._deliveries.clear()
        finally:
            connection.close()

    def _relay_loop(self, until_empty: bool) -> None:
        """One relay worker: its own database connection and broker connection.

        Several workers overlap one batch's wait for confirms with another's database
        work; per-item order holds between them as between separate relay processes.
        """
        poll = float(wsconfig.get().relay.pollSeconds)
        publisher = ConfirmingPublisher()
        wakeup = _Wakeup(nudge.relay_channel())
        if not until_empty:
            wakeup.subscribe()  # before the first pass, so a commit during it is not missed
        backoff = 0.5
        last_heartbeat = time.monotonic()
        try:
            while not self.stop.is_set():
                try:
                    if not publisher.connected:
                        # Connecting declares the exchange: it exists from the relay's start, before
                        # any event, so a consumer binding to it then finds it.
                        publisher.connect()
                    relay.relay_drain(publisher, batch_size=self.batch_size, on_batch=self._on_batch)
                    backoff = 0.5
                except BrokerUnavailable as exc:
                    metrics.RELAY_BROKER_ERRORS.inc()
                    log.warning("event bus unavailable (%s); retrying in %.1fs", exc, backoff)
                    self.stop.wait(backoff)
                    backoff = min(backoff * 2, MAX_BACKOFF)
                    continue
                except (OperationalError, InterfaceError):
                    log.warning("database unavailable; retrying in %.1fs", backoff, exc_info=True)
                    connection.close()
                    self.stop.wait(backoff)
                    backoff = min(backoff * 2, MAX_BACKOFF)
                    continue
                if until_empty:
                    break
                if time.monotonic() - last_heartbeat > 5:
                    publisher.heartbeat()
                    close_old_connections()
                    last_heartbeat = time.monotonic()
                wakeup.wait(poll, self.stop)
        finally:
            wakeup.close()
            publisher.close()
            connection.close()

    def run(self, *, until_empty: bool = False) -> int:
        """Relay until stopped (or, with `until_empty`, until nothing is due). Returns events published."""
        if self.webhooks_enabled and not until_empty:
            self._webhook_thread = threading.Thread(target=self._webhook_loop, name="webhooks", daemon=True)
            self._webhook_thread.start()
        threads = [
            threading.Thread(target=self._relay_loop, args=(until_empty,), name=f"relay-{i}", daemon=True)
            for i in range(self.workers)
        ]
        try:
            for t in threads:
                t.start()
            while any(t.is_alive() for t in threads):
                for t in threads:
                    t.join(timeout=0.5)
            if until_empty and self.webhooks_enabled:
                webhooks.deliver_until_idle()
        finally:
            self.stop.set()
            for t in threads:
                t.join(timeout=30)
            if self._webhook_thread is not None:
                self._deliveries.set()
                self._webhook_thread.join(timeout=10)
        return self.published
