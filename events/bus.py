"""RabbitMQ through kombu: a publisher with batched publisher confirms, and the queue declarations.

The relay publishes a whole batch and then waits once for the broker's confirms,
instead of one round trip per message (one-at-a-time confirms published 1,130
messages/s against 7,129 batched: docs/performance.md, "Event relay"). The
channel is in confirm mode (`confirm.select`); every publish gets the next
delivery tag; the broker acks (or nacks) tags, singly or
"all up to n" (`multiple`). A batch's frames are written to the socket in one
`sendall`: py-amqp's per-publish path costs a syscall and a non-blocking read
per message, which made the client, not the broker, the bottleneck.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from struct import pack

import amqp
from amqp import spec
from amqp.method_framing import frame_writer
from amqp.serialization import dumps
from django.conf import settings
from kombu import Connection

from config import wsconfig

log = logging.getLogger(__name__)

# Errors that mean "the broker (or the way to it) is unavailable", as opposed to a
# problem with particular messages. The relay backs off and retries without
# counting these against the events' attempts.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,  # socket errors, refused, reset, timeouts (socket.timeout is an OSError)
    amqp.exceptions.ConnectionError,
    amqp.exceptions.RecoverableConnectionError,
    ConnectionError,
    EOFError,
)


class BrokerUnavailable(Exception):
    """The broker cannot be reached, or stopped answering (no confirms in time)."""


class ChannelFailed(Exception):
    """The broker closed the channel while publishing (e.g. the exchange vanished)."""


@dataclass
class OutgoingMessage:
    """One message to publish: routing key, body bytes and AMQP properties."""

    routing_key: str
    body: bytes
    message_id: str
    content_type: str = "application/json"
    headers: dict = field(default_factory=dict)
    type: str = ""
    correlation_id: str = ""
    timestamp: int | None = None  # AMQP timestamp: POSIX seconds
    app_id: str = ""


def connection(url: str | None = None, *, connect_timeout: float = 5, heartbeat: int = 30) -> Connection:
    """A kombu connection to the event bus (AMQP_URL), with timeouts so nothing hangs on a dead broker."""
    return Connection(
        url or settings.AMQP_URL,
        connect_timeout=connect_timeout,
        heartbeat=heartbeat,
        transport_options={"read_timeout": 30, "write_timeout": 30},
    )


class _FrameBuffer:
    """Stands in for the transport while a batch is framed: collects the bytes to send at once."""

    def __init__(self):
        self.chunks: list[bytes] = []

    def write(self, data) -> None:
        # py-amqp hands over a view of a buffer it reuses for the next frame: copy it.
        self.chunks.append(bytes(data))


class ConfirmingPublisher:
    """Publishes batches of persistent messages to one topic exchange and waits for their confirms.

    Not thread-safe; one per relay loop. `publish_batch` returns, per message,
    None (confirmed) or the reason the broker refused it (nack). It raises
    BrokerUnavailable when the connection fails or the confirms do not arrive in
    time (the outcome of the batch is then unknown, so nothing may be marked
    published: the rows are sent again, and consumers dedupe by `event_id`).
    """

    def __init__(
        self,
        *,
        url: str | None = None,
        exchange: str | None = None,
        confirm_timeout: float | None = None,
        heartbeat: int = 30,
    ):
        cfg = wsconfig.get().eventBus
        self.url = url or settings.AMQP_URL
        self.exchange = exchange or cfg.exchange
        self.confirm_timeout = confirm_timeout or cfg.confirmTimeoutSeconds
        self.heartbeat_seconds = heartbeat
        self.conn: Connection | None = None
        self.channel = None
        self._next_tag = 1
        self._pending: dict[int, int] = {}  # delivery tag -> index in the batch
        self._nacked: set[int] = set()
        self._blocked: str | None = None
        self._args_cache: dict[str, bytes] = {}

    # --- connection -------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self.conn is not None and self.channel is not None and self.conn.connected

    def connect(self) -> None:
        """Open the connection and a confirm-mode channel, and declare the exchange (idempotent)."""
        self.close()
        conn = connection(self.url, heartbeat=self.heartbeat_seconds)
        try:
            # Two quick tries, no 2 s pause (kombu's connect() default): the caller has its own backoff.
            conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, reraise_as_library_errors=False)
            raw = conn.connection  # the py-amqp Connection
            raw.on_blocked = self._on_blocked
            raw.on_unblocked = self._on_unblocked
            channel = conn.channel()
            declare_exchange(channel, self.exchange)
            channel.confirm_select()
            channel.events["basic_ack"].add(self._on_ack)
            channel.events["basic_nack"].add(self._on_nack)
        except CONNECTION_ERRORS as exc:
            _close_quietly(conn)
            raise BrokerUnavailable(f"cannot connect to the event bus: {exc!r}") from exc
        except amqp.exceptions.AMQPError as exc:
            _close_quietly(conn)
            raise BrokerUnavailable(f"the event bus refused the set-up: {exc!r}") from exc
        self.conn, self.channel = conn, channel
        self._next_tag = 1
        self._pending.clear()
        self._nacked.clear()
        self._blocked = None
        self._writer = frame_writer(raw, _buffer := _FrameBuffer())
        self._buffer = _buffer

    def close(self) -> None:
        if self.conn is not None:
            _close_quietly(self.conn)
        self.conn = self.channel = None

    def heartbeat(self) -> None:
        """Keep an idle connection alive (call every few seconds while waiting)."""
        if not self.connected:
            return
        try:
            self.conn.heartbeat_check()
            self.conn.drain_events(timeout=0)
        except TimeoutError:
            pass
        except CONNECTION_ERRORS + (amqp.exceptions.AMQPError,):
            log.warning("event bus connection lost while idle; reconnecting on the next batch")
            self.close()

    # --- confirms ---------------------------------------------------------------------

    def _on_ack(self, delivery_tag: int, multiple: bool) -> None:
        self._settle(delivery_tag, multiple, nack=False)

    def _on_nack(self, delivery_tag: int, multiple: bool) -> None:
        self._settle(delivery_tag, multiple, nack=True)

    def _settle(self, tag: int, multiple: bool, *, nack: bool) -> None:
        tags = [t for t in self._pending if t <= tag] if multiple else ([tag] if tag in self._pending else [])
        for t in tags:
            index = self._pending.pop(t)
            if nack:
                self._nacked.add(index)

    def _on_blocked(self, reason: str) -> None:
        self._blocked = reason or "blocked"
        log.warning("event bus blocked the connection: %s", reason)

    def _on_unblocked(self) -> None:
        self._blocked = None
        log.info("event bus unblocked the connection")

    # --- publishing -------------------------------------------------------------------

    def _publish_args(self, routing_key: str) -> bytes:
        args = self._args_cache.get(routing_key)
        if args is None:
            # basic.publish(ticket, exchange, routing_key, mandatory, immediate)
            args = self._args_cache[routing_key] = dumps("Bssbb", (0, self.exchange, routing_key, False, False))
        return args

    def publish_batch(self, messages: Sequence[OutgoingMessage]) -> list[str | None]:
        """Publish `messages` in order, wait for all confirms; per message None or the nack reason."""
        if not messages:
            return []
        if not self.connected:
            self.connect()
        if self._blocked:
            raise BrokerUnavailable(f"the event bus is blocking publishers: {self._blocked}")
        channel, raw = self.channel, self.conn.connection
        first_tag = self._next_tag
        self._buffer.chunks.clear()
        channel_id = channel.channel_id
        for index, m in enumerate(messages):
            content = _Content(m.body, encode_properties(m))
            self._writer(1, channel_id, spec.Basic.Publish, self._publish_args(m.routing_key), content)
            self._pending[first_tag + index] = index
        self._next_tag = first_tag + len(messages)
        data = b"".join(self._buffer.chunks)
        self._buffer.chunks.clear()
        try:
            raw.transport.write(data)
            raw.bytes_sent += 1
            self._await_confirms()
        except amqp.exceptions.ChannelError as exc:
            # The broker closed the channel (e.g. 404: the exchange was deleted). The
            # connection is still fine; the next batch reconnects and redeclares.
            self.close()
            raise ChannelFailed(f"the event bus closed the channel: {exc!r}") from exc
        except CONNECTION_ERRORS + (amqp.exceptions.AMQPError,) as exc:
            self.close()
            raise BrokerUnavailable(f"publishing failed: {exc!r}") from exc
        nacked, self._nacked = self._nacked, set()
        return ["nacked by the broker" if i in nacked else None for i in range(len(messages))]

    def _await_confirms(self) -> None:
        deadline = time.monotonic() + self.confirm_timeout
        while self._pending:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                pending = len(self._pending)
                self.close()  # late confirms for this batch must not be read as confirms of the next
                raise BrokerUnavailable(f"no confirm for {pending} message(s) within {self.confirm_timeout}s")
            try:
                self.conn.drain_events(timeout=min(remaining, 1.0))
            except TimeoutError:
                continue


# --- message properties, serialized directly -------------------------------------------------
#
# py-amqp serializes a message's properties through a generic, introspecting path
# that cost about half of the relay's CPU per event. The relay's messages always
# carry the same few properties, so they are written here, byte for byte as
# py-amqp writes them (tests/events/test_bus.py compares the two).

_FLAGS = {name: 1 << (15 - i) for i, (name, _) in enumerate(amqp.Message.PROPERTIES)}


def _shortstr(value: str) -> bytes:
    raw = value.encode()[:255]
    return bytes((len(raw),)) + raw


def _table(values: dict) -> bytes:
    parts = []
    for key, value in values.items():
        parts.append(_shortstr(key))
        if isinstance(value, bool):
            parts.append(pack(">cB", b"t", int(value)))
        elif isinstance(value, int):
            parts.append(pack(">ci", b"I", value) if -2147483647 <= value <= 2147483647 else pack(">cq", b"L", value))
        else:
            raw = str(value).encode("utf-8", "surrogatepass")
            parts.append(pack(">cI", b"S", len(raw)) + raw)
    data = b"".join(parts)
    return pack(">I", len(data)) + data


def encode_properties(m: OutgoingMessage) -> bytes:
    """The content header's property flags and list for `m` (persistent, delivery mode 2)."""
    flags = _FLAGS["content_type"] | _FLAGS["delivery_mode"] | _FLAGS["message_id"]
    parts = [_shortstr(m.content_type)]
    if m.headers:
        flags |= _FLAGS["application_headers"]
        parts.append(_table(m.headers))
    parts.append(b"\x02")
    if m.correlation_id:
        flags |= _FLAGS["correlation_id"]
        parts.append(_shortstr(m.correlation_id))
    parts.append(_shortstr(m.message_id))
    if m.timestamp is not None:
        flags |= _FLAGS["timestamp"]
        parts.append(pack(">Q", m.timestamp))
    if m.type:
        flags |= _FLAGS["type"]
        parts.append(_shortstr(m.type))
    if m.app_id:
        flags |= _FLAGS["app_id"]
        parts.append(_shortstr(m.app_id))
    return pack(">H", flags) + b"".join(parts)


class _Content:
    """What py-amqp's frame writer needs of a message: its body and serialized properties."""

    __slots__ = ("body", "_properties")

    def __init__(self, body: bytes, properties: bytes):
        self.body = body
        self._properties = properties

    def _serialize_properties(self) -> bytes:
        return self._properties


def _close_quietly(conn: Connection) -> None:
    try:
        conn.release()
    except Exception:  # noqa: BLE001 - closing a broken connection may fail in many ways
        log.debug("closing the event bus connection failed", exc_info=True)


# --- queues of the consumers --------------------------------------------------------------


def command_queue_arguments(dead_letter_queue: str, *, delivery_limit: int = 10) -> dict:
    """A quorum queue whose dead-lettering is confirmed (at-least-once; plain dead-lettering is not).

    `x-delivery-limit` is the broker's backstop for a message that kills the
    consumer before it can decide (the consumer itself dead-letters commands that
    fail `eventBus.commandMaxFailures` times, with the reason).
    """
    return {
        "x-queue-type": "quorum",
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": dead_letter_queue,
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",  # required by at-least-once dead-lettering
        "x-delivery-limit": delivery_limit,
    }


def declare_command_queues(channel, *, queue: str, dead_letter_queue: str) -> None:
    channel.queue_declare(dead_letter_queue, durable=True, auto_delete=False, arguments={"x-queue-type": "quorum"})
    channel.queue_declare(queue, durable=True, auto_delete=False, arguments=command_queue_arguments(dead_letter_queue))


def declare_exchange(channel, exchange: str) -> None:
    """The events' topic exchange (durable): the relay declares it when it connects, before any event."""
    channel.exchange_declare(exchange, "topic", durable=True, auto_delete=False)


def declare_notification_queue(
    channel, *, exchange: str, queue: str, bindings: Sequence[str], dead_letter_queue: str
) -> None:
    """The exchange, the notification consumer's dead-letter queue (what is not an event envelope
    goes there, with the reason) and its queue, bound. The queue's own arguments are unchanged from
    before the dead-letter queue existed, so a broker's existing queue is redeclared as it is."""
    declare_exchange(channel, exchange)
    channel.queue_declare(dead_letter_queue, durable=True, auto_delete=False, arguments={"x-queue-type": "quorum"})
    channel.queue_declare(queue, durable=True, auto_delete=False, arguments={"x-queue-type": "quorum"})
    for key in bindings:
        channel.queue_bind(queue, exchange, key)


def publish_confirmed(
    channel, *, exchange: str, routing_key: str, body: bytes, headers: dict | None = None, timeout: float = 10
) -> None:
    """Publish one persistent message and wait for its confirm (dead-letter queue; rare, so one at a time)."""
    msg = amqp.Message(body, delivery_mode=2, application_headers=headers or {})
    channel.basic_publish_confirm(msg, exchange=exchange, routing_key=routing_key, confirm_timeout=timeout)
