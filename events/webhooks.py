"""Webhook and callback delivery: Standard Webhooks signing, retries, circuit breaker.

Deliveries are rows (`Delivery`) the relay creates when an event is published.
The sender claims due rows with a lease (a conditional UPDATE moving
`next_attempt_at` past the HTTP timeout), sends them outside any transaction,
and records the outcome; a sender that dies mid-request leaves the lease to
expire, and the row is sent again (at-least-once; receivers dedupe by
`webhook-id`, which is the event id and stays the same across retries).

Every attempt resolves the URL again through the SSRF guard (events.urlguard) and
connects to the address it checked: a target refused now fails the delivery at once
without sending anything; a name that does not resolve is retried like a refused
connection.

Per subscription, consecutive failed attempts open a circuit breaker for
`webhooks.breakerOpenSeconds`: nothing is sent to the endpoint until then, and
then one delivery probes it. `webhooks.disableAfterFailures` consecutive failures
(or a 410 Gone) disable the subscription, audited on `subscription:<id>`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import logging
import random
import secrets
import socket
import ssl
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from opentelemetry.trace import SpanKind

from audit.services import audit_record
from config import tracing, wsconfig
from config.timefmt import isoformat_z
from events import metrics, urlguard
from events.models import Delivery, Subscription
from events.relay import rows_by_event_ids

log = logging.getLogger(__name__)

USER_AGENT = "Workstream-Webhooks/1"
SECRET_PREFIX = "whsec_"  # noqa: S105 - the Standard Webhooks secret prefix, not a secret
MAX_RESPONSE_BYTES = 64 * 1024


# --- signing (https://www.standardwebhooks.com/) -------------------------------------------


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()


def callback_secret() -> str:
    """The key that signs `callback_url` deliveries: CALLBACK_SIGNING_SECRET, else derived from SECRET_KEY."""
    configured = getattr(settings, "CALLBACK_SIGNING_SECRET", "")
    if configured:
        return configured
    derived = hmac.new(settings.SECRET_KEY.encode(), b"workstream-callbacks", hashlib.sha256).digest()
    return SECRET_PREFIX + base64.b64encode(derived).decode()


def _key(secret: str) -> bytes:
    raw = secret.removeprefix(SECRET_PREFIX)
    try:
        return base64.b64decode(raw, validate=True)
    except ValueError:
        return raw.encode()


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """`v1,<base64 HMAC-SHA256 of "id.timestamp.body">`."""
    mac = hmac.new(_key(secret), f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def verify(secret: str, headers: dict, body: bytes, *, tolerance: int = 300) -> bool:
    """Check a delivery as a receiver would (used by the tests and handy for clients)."""
    lower = {k.lower(): v for k, v in headers.items()}
    msg_id, ts = lower.get("webhook-id", ""), lower.get("webhook-timestamp", "")
    if not msg_id or not ts.isdigit() or abs(time.time() - int(ts)) > tolerance:
        return False
    expected = sign(secret, msg_id, int(ts), body).split(",", 1)[1]
    for candidate in lower.get("webhook-signature", "").split():
        version, _, value = candidate.partition(",")
        if version == "v1" and hmac.compare_digest(value, expected):
            return True
    return False


# --- sending one request to a checked address --------------------------------------------


class _PinnedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, host, port, ip, timeout):
        super().__init__(host, port, timeout=timeout)
        self._ip = ip

    def connect(self):
        self.sock = socket.create_connection((self._ip, self.port), self.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, host, port, ip, timeout):
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self._ip = ip

    def connect(self):
        sock = socket.create_connection((self._ip, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


def http_post(url: str, body: bytes, headers: dict, *, timeout: float, allow_private: bool | None = None) -> int:
    """POST `body` to `url`, resolved and checked by the SSRF guard now (events.urlguard), to the
    address checked (no second lookup, no redirects followed); the status code."""
    target = urlguard.resolve(url, allow_private=allow_private)
    cls = _PinnedHTTPSConnection if target.scheme == "https" else _PinnedHTTPConnection
    conn = cls(target.host, target.port, target.addresses[0], timeout)
    try:
        conn.request("POST", target.path, body=body, headers=headers)
        resp = conn.getresponse()
        resp.read(MAX_RESPONSE_BYTES)
        return resp.status
    finally:
        conn.close()


# --- sending ------------------------------------------------------------------------------


_CLAIM_SQL = """
WITH due AS (
  SELECT d.id FROM events_delivery d
  LEFT JOIN events_subscription s ON s.id = d.subscription_id
  WHERE d.status = 'pending' AND d.next_attempt_at <= %(now)s
    AND (d.subscription_id IS NULL
         OR (s.active AND s.deleted_at IS NULL AND (s.circuit_open_until IS NULL OR s.circuit_open_until <= %(now)s)))
  ORDER BY d.next_attempt_at, d.id
  LIMIT %(limit)s
  FOR UPDATE OF d SKIP LOCKED)
UPDATE events_delivery d SET next_attempt_at = %(lease)s FROM due WHERE d.id = due.id
RETURNING d.id
"""


@dataclass
class AttemptOutcome:
    ok: bool
    status_code: int | None
    error: str
    permanent: bool  # no point retrying (refused target)
    gone: bool  # 410: the receiver asks us to stop
    seconds: float


def backoff(attempts: int) -> float:
    """Seconds before attempt `attempts + 1`: exponential with equal jitter."""
    cfg = wsconfig.get().webhooks
    delay = min(float(cfg.retryMaxSeconds), float(cfg.retryBaseSeconds) * 2 ** max(attempts - 1, 0))
    return delay / 2 + random.uniform(0, delay / 2)


def claim_due(limit: int) -> list[int]:
    cfg = wsconfig.get().webhooks
    now = timezone.now()
    lease = now + timedelta(seconds=float(cfg.timeoutSeconds) * 2 + 30)
    with transaction.atomic(), connection.cursor() as cur:
        cur.execute(_CLAIM_SQL, {"now": now, "limit": limit, "lease": lease})
        return [r[0] for r in cur.fetchall()]


def attempt(delivery: Delivery, body: bytes, msg_id: str, traceparent: str = "") -> AttemptOutcome:
    """One POST of `body`, in a CLIENT span that continues the event's trace (`traceparent`, the
    outbox row's): the request's `traceparent` header is that span's (the stored one, tracing off)."""
    span = tracing.start_span(
        "POST",
        parent=traceparent,
        kind=SpanKind.CLIENT,
        attributes={"http.request.method": "POST", "workstream.delivery.kind": delivery.kind, "webhook.id": msg_id},
    )
    outcome = _attempt(delivery, body, msg_id, tracing.traceparent_of(span) or traceparent)
    if outcome.status_code is not None:
        span.set_attribute("http.response.status_code", outcome.status_code)
    tracing.end_span(span, outcome.error)
    return outcome


def _attempt(delivery: Delivery, body: bytes, msg_id: str, traceparent: str) -> AttemptOutcome:
    cfg = wsconfig.get().webhooks
    secret = delivery.subscription.secret if delivery.subscription_id else callback_secret()
    ts = int(time.time())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "webhook-id": msg_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": sign(secret, msg_id, ts, body),
    }
    if traceparent:
        headers["traceparent"] = traceparent
    t0 = time.perf_counter()
    try:
        status = http_post(delivery.url, body, headers, timeout=float(cfg.timeoutSeconds))
    except urlguard.TargetUnresolved as exc:  # DNS may answer next time: retried
        return AttemptOutcome(False, None, f"unresolved: {exc}", False, False, time.perf_counter() - t0)
    except urlguard.TargetRefused as exc:  # the address is not allowed: never sent, failed now
        return AttemptOutcome(False, None, f"refused: {exc}", True, False, time.perf_counter() - t0)
    except (OSError, http.client.HTTPException) as exc:
        return AttemptOutcome(False, None, f"{type(exc).__name__}: {exc}", False, False, time.perf_counter() - t0)
    seconds = time.perf_counter() - t0
    metrics.WEBHOOK_LATENCY.labels(kind=delivery.kind).observe(seconds)
    ok = 200 <= status < 300
    return AttemptOutcome(ok, status, "" if ok else f"HTTP {status}", False, status == 410, seconds)


def record(delivery: Delivery, outcome: AttemptOutcome) -> None:
    """Write the attempt to the delivery (and the subscription's breaker) in one transaction."""
    cfg = wsconfig.get().webhooks
    now = timezone.now()
    with transaction.atomic():
        d = Delivery.objects.select_for_update().get(pk=delivery.pk)
        d.attempts += 1
        d.last_status_code = outcome.status_code
        d.last_error = outcome.error
        d.attempt_log = [
            *d.attempt_log,
            {
                "attempt": d.attempts,
                "at": isoformat_z(now),
                "status_code": outcome.status_code,
                "error": outcome.error,
                "ms": round(outcome.seconds * 1000, 1),
            },
        ]
        if outcome.ok:
            d.status, d.delivered_at = Delivery.DELIVERED, now
        elif outcome.permanent or outcome.gone or d.attempts >= cfg.maxAttempts:
            d.status = Delivery.FAILED
        else:
            d.next_attempt_at = now + timedelta(seconds=backoff(d.attempts))
        d.save(
            update_fields=[
                "attempts",
                "last_status_code",
                "last_error",
                "attempt_log",
                "status",
                "delivered_at",
                "next_attempt_at",
            ]
        )
        if d.subscription_id:
            _subscription_outcome(d.subscription_id, outcome, now)
    label = "delivered" if outcome.ok else ("failed" if d.status == Delivery.FAILED else "retry")
    metrics.WEBHOOK_DELIVERIES.labels(kind=d.kind, outcome=label).inc()


def _subscription_outcome(sub_id: int, outcome: AttemptOutcome, now) -> None:
    cfg = wsconfig.get().webhooks
    sub = Subscription.objects.select_for_update().get(pk=sub_id)
    if outcome.ok:
        if sub.consecutive_failures or sub.circuit_open_until:
            sub.consecutive_failures, sub.circuit_open_until = 0, None
            sub.save(update_fields=["consecutive_failures", "circuit_open_until"])
        return
    sub.consecutive_failures += 1
    if sub.consecutive_failures >= cfg.breakerThreshold:
        sub.circuit_open_until = now + timedelta(seconds=float(cfg.breakerOpenSeconds))
    fields = ["consecutive_failures", "circuit_open_until"]
    if sub.active and (outcome.gone or sub.consecutive_failures >= cfg.disableAfterFailures):
        reason = (
            "the endpoint answered 410 Gone"
            if outcome.gone
            else f"{sub.consecutive_failures} consecutive failed deliveries (last: {outcome.error})"
        )
        sub.active, sub.disabled_at, sub.disabled_reason = False, now, reason[:500]
        fields += ["active", "disabled_at", "disabled_reason"]
        audit_record(
            stream=f"subscription:{sub.pk}",
            action="disable",
            actor=None,
            from_state="active",
            to_state="disabled",
            data={"reason": reason, "url": sub.url, "consecutive_failures": sub.consecutive_failures},
            channel="system",
        )
        metrics.SUBSCRIPTIONS_DISABLED.inc()
        log.warning("webhook subscription %s disabled: %s", sub.pk, reason)
    sub.save(update_fields=fields)


def _send_group(deliveries: list[Delivery], bodies: dict[int, tuple[bytes, str, str]], *, in_thread: bool) -> int:
    """Send one endpoint's deliveries in order; stop when its circuit opens (the rest wait for it)."""
    sent = 0
    try:
        for i, d in enumerate(deliveries):
            if d.subscription_id and i > 0:
                sub = Subscription.objects.only("active", "circuit_open_until").get(pk=d.subscription_id)
                if not sub.active or (sub.circuit_open_until and sub.circuit_open_until > timezone.now()):
                    until = sub.circuit_open_until or timezone.now()
                    Delivery.objects.filter(pk__in=[x.pk for x in deliveries[i:]], status=Delivery.PENDING).update(
                        next_attempt_at=until
                    )
                    break
            if d.event_id not in bodies:
                outcome = AttemptOutcome(False, None, "the event is gone (purged)", True, False, 0.0)
            else:
                outcome = attempt(d, *bodies[d.event_id])
            record(d, outcome)
            sent += 1
    finally:
        if in_thread:
            connection.close()  # a pool thread's own connection: give it back
    return sent


def deliver_due(*, limit: int = 100) -> int:
    """Claim and send up to `limit` due deliveries, endpoints in parallel. Returns attempts made."""
    if not wsconfig.get().features.events.publish:
        return 0
    ids = claim_due(limit)
    if not ids:
        return 0
    deliveries = list(Delivery.objects.filter(pk__in=ids).select_related("subscription").order_by("id"))
    rows = rows_by_event_ids(list({d.event_id for d in deliveries}))
    bodies = {rid: (row.body(), row.event_id, row.traceparent) for rid, row in rows.items()}
    groups: dict[str, list[Delivery]] = {}
    for d in deliveries:
        key = f"s{d.subscription_id}" if d.subscription_id else f"c{d.pk}"
        groups.setdefault(key, []).append(d)
    workers = min(len(groups), wsconfig.get().webhooks.concurrency)
    if workers <= 1:
        return sum(_send_group(g, bodies, in_thread=False) for g in groups.values())
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="webhook") as pool:
        return sum(pool.map(lambda g: _send_group(g, bodies, in_thread=True), groups.values()))


def deliver_until_idle(*, deadline: float | None = None, limit: int = 100) -> int:
    """Send due deliveries until none is due (or the monotonic `deadline` passes)."""
    total = 0
    while deadline is None or time.monotonic() < deadline:
        n = deliver_due(limit=limit)
        total += n
        if n == 0:
            break
    return total
