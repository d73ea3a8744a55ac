"""Long-running RabbitMQ consumers: inbound commands and the notification consumer.

Both ack a message only after its database transaction committed, so a crash
at any point leaves the message to be redelivered (and the idempotency keys make
the redelivery harmless). Connection loss is retried with backoff.
"""

from __future__ import annotations

import logging
import threading
import time

import amqp
from django.db import InterfaceError, OperationalError, close_old_connections, connection
from kombu import Consumer, Queue
from opentelemetry.trace import SpanKind

from config import tracing, wsconfig
from config.timefmt import now_z
from events import bus, inbound, metrics, notifications

log = logging.getLogger(__name__)


class ConsumerLoop:
    """Consume one queue until `stop` is set (or `max_idle` seconds pass without a message)."""

    prefetch = 10

    def __init__(self, *, url: str | None = None, stop: threading.Event | None = None):
        self.url = url
        self.stop = stop or threading.Event()
        self.handled = 0
        self._last_message = time.monotonic()
        self.dlq_conn = None
        self.dlq_channel = None

    # hooks
    queue_name: str = ""
    dead_letter_queue: str = ""

    def declare(self, channel) -> None:
        raise NotImplementedError

    def handle(self, message) -> None:
        raise NotImplementedError

    def setup(self, conn) -> None:
        """Once connected: a confirm-mode channel on a connection of its own for dead-lettering
        (waiting for its confirm on the consuming connection would dispatch the next deliveries
        re-entrantly, inside the handler)."""
        self.dlq_conn = bus.connection(self.url, heartbeat=0)  # mostly idle: no heartbeats to miss
        self.dlq_conn.connect()
        self.dlq_channel = self.dlq_conn.channel()
        self.dlq_channel.confirm_select()

    def teardown(self) -> None:
        """Release what setup() made."""
        if self.dlq_conn is not None:
            bus._close_quietly(self.dlq_conn)
        self.dlq_conn = self.dlq_channel = None

    def dead_letter(self, message, reason: str) -> None:
        """Publish the message to `dead_letter_queue` with the reason (confirmed), then ack it."""
        headers = dict(message.headers or {})
        headers.update(
            {
                "x-workstream-reason": reason[:1000],
                "x-workstream-queue": self.queue_name,
                "x-workstream-dead-lettered-at": now_z(),
            }
        )
        bus.publish_confirmed(
            self.dlq_channel, exchange="", routing_key=self.dead_letter_queue, body=message.body, headers=headers
        )
        message.ack()
        log.error("message dead-lettered to %s: %s", self.dead_letter_queue, reason)

    def _on_message(self, message) -> None:
        self._last_message = time.monotonic()
        # A CONSUMER span continuing the trace of the message's `traceparent` header (a new trace
        # without one): what handling it writes (SQL, the outcome event's outbox row) is in it.
        with tracing.continued(
            f"{self.queue_name} process",
            parent=(message.headers or {}).get("traceparent"),
            kind=SpanKind.CONSUMER,
            attributes={
                "messaging.system": "rabbitmq",
                "messaging.operation.type": "process",
                "messaging.destination.name": self.queue_name,
            },
        ):
            self.handle(message)
        self.handled += 1

    def run(self, *, max_idle: float | None = None) -> int:
        """Consume until stopped; returns messages handled."""
        backoff = 0.5
        while not self.stop.is_set():
            conn = bus.connection(self.url)
            try:
                conn.connect()
                channel = conn.channel()
                self.declare(channel)
                channel.basic_qos(0, self.prefetch, False)
                self.setup(conn)
                consumer = Consumer(
                    channel,
                    queues=[Queue(self.queue_name, no_declare=True)],
                    on_message=self._on_message,
                    auto_declare=False,
                    no_ack=False,
                )
                log.info("consuming %s", self.queue_name)
                backoff = 0.5
                with consumer:
                    while not self.stop.is_set():
                        try:
                            conn.drain_events(timeout=1)
                        except TimeoutError:
                            conn.heartbeat_check()
                            close_old_connections()
                        if max_idle is not None and time.monotonic() - self._last_message > max_idle:
                            return self.handled
            except bus.CONNECTION_ERRORS + (amqp.exceptions.ConnectionError,) as exc:
                log.warning("event bus connection failed (%r); retrying in %.1fs", exc, backoff)
                self.stop.wait(backoff)
                backoff = min(backoff * 2, 30)
            finally:
                self.teardown()
                bus._close_quietly(conn)
        return self.handled


def _delivery_count(message) -> int:
    """How many times the broker delivered this message before (quorum queues count returns)."""
    value = (message.headers or {}).get("x-delivery-count", 0)
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


class CommandConsumer(ConsumerLoop):
    """`manage.py consume_commands`: inbound commands → service layer, poison → dead-letter queue."""

    def __init__(self, *, url=None, stop=None, queue: str | None = None, dead_letter_queue: str | None = None):
        super().__init__(url=url, stop=stop)
        cfg = wsconfig.get().eventBus
        self.queue_name = queue or cfg.commandQueue
        self.dead_letter_queue = dead_letter_queue or cfg.deadLetterQueue
        self.max_failures = cfg.commandMaxFailures

    def declare(self, channel) -> None:
        bus.declare_command_queues(channel, queue=self.queue_name, dead_letter_queue=self.dead_letter_queue)

    def dead_letter(self, message, reason: str) -> None:
        super().dead_letter(message, reason)
        metrics.COMMANDS.labels(outcome="dead_lettered").inc()

    def handle(self, message) -> None:
        try:
            cmd = inbound.parse(message.body)
        except inbound.Poison as exc:
            self.dead_letter(message, f"invalid command: {exc}")
            return
        if inbound.seen(cmd["command_id"]):
            message.ack()
            metrics.COMMANDS.labels(outcome="duplicate").inc()
            return
        failures = _delivery_count(message)
        wait = 0.5
        while True:
            try:
                outcome = inbound.apply(cmd)
                break
            except (OperationalError, InterfaceError) as exc:
                # The database is unavailable: not the command's fault, so it does not
                # count as a failure. Keep the message (unacked) and wait.
                log.warning("database unavailable while applying a command (%r); retrying", exc)
                connection.close()
                if self.stop.wait(wait):
                    return  # unacked: the broker redelivers it to the next consumer
                wait = min(wait * 2, 30)
            except Exception as exc:
                failures += 1
                connection.close_if_unusable_or_obsolete()
                if failures >= self.max_failures:
                    self.dead_letter(message, f"failed {failures} times: {type(exc).__name__}: {exc}")
                else:
                    log.warning("command %s failed (%d/%d): %r", cmd["command_id"], failures, self.max_failures, exc)
                    message.reject(requeue=True)
                return
        inbound.remember(cmd["command_id"])
        message.ack()
        metrics.COMMANDS.labels(outcome=outcome).inc()


class NotificationConsumer(ConsumerLoop):
    """`manage.py consume_notifications`: every event on the exchange, recorded once; a message that
    is not an event envelope goes to `eventBus.notificationDeadLetterQueue` with the reason."""

    prefetch = 50

    def __init__(
        self,
        *,
        url=None,
        stop=None,
        queue: str | None = None,
        exchange: str | None = None,
        bindings=None,
        dead_letter_queue: str | None = None,
    ):
        super().__init__(url=url, stop=stop)
        cfg = wsconfig.get().eventBus
        self.queue_name = queue or cfg.notificationQueue
        self.exchange = exchange or cfg.exchange
        self.bindings = list(bindings or cfg.notificationBindings)
        self.dead_letter_queue = dead_letter_queue or cfg.notificationDeadLetterQueue

    def declare(self, channel) -> None:
        bus.declare_notification_queue(
            channel,
            exchange=self.exchange,
            queue=self.queue_name,
            bindings=self.bindings,
            dead_letter_queue=self.dead_letter_queue,
        )

    def handle(self, message) -> None:
        while True:
            try:
                outcome = notifications.record(message.body)
                break
            except (OperationalError, InterfaceError) as exc:
                log.warning("database unavailable while recording an event (%r); retrying", exc)
                connection.close()
                if self.stop.wait(1):
                    return
        if outcome == notifications.INVALID:
            self.dead_letter(message, f"not an event envelope: {message.body[:200]!r}")
        else:
            message.ack()
        metrics.NOTIFICATIONS.labels(outcome=outcome).inc()
