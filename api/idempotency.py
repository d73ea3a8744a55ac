"""Idempotency-Key on POST (IETF httpapi draft, Stripe's semantics).

Per client: the same key and body replay the first response (status, headers
that matter, body byte for byte) and change nothing; the same key with a
different body is a 422; while the first request is still running, a 409.
Keys live `idempotency.retentionHours` (24 h) and are purged by a periodic job.

How it holds under concurrency: the whole request runs in one transaction that
first takes a transaction-scoped advisory lock on (client, key) without
waiting. Losing that lock means another request with the key is in flight
(409). The winner looks for a stored response (replay), else runs the view and
stores its response in the same transaction as the change, so the record and
the change commit or roll back together.
"""

from __future__ import annotations

import hashlib
from datetime import timedelta

from django.db import connection, transaction
from django.http import HttpResponse
from django.utils import timezone

from api.models import IdempotencyRecord
from api.problems import ProblemException
from config import wsconfig

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
_KEPT_HEADERS = ("Location", "ETag", "Content-Type")
MAX_KEY = 255


def retention() -> timedelta:
    return timedelta(hours=wsconfig.get().idempotency.retentionHours)


def fingerprint(request) -> str:
    h = hashlib.sha256()
    h.update(request.method.encode())
    h.update(b"\0")
    h.update(request.get_full_path().encode())
    h.update(b"\0")
    h.update(request.body)
    return h.hexdigest()


def client_of(request) -> str:
    return f"user:{request.user.pk}"


def _try_lock(client: str, key: str) -> bool:
    if connection.vendor != "postgresql":
        return True  # the embedded SQLite default serialises writers anyway
    with connection.cursor() as cur:
        cur.execute("SELECT pg_try_advisory_xact_lock(hashtextextended(%s, 0))", [f"idem:{client}:{key}"])
        return bool(cur.fetchone()[0])


class Replay(Exception):
    """Raised inside the view's transaction to short-circuit with the stored response."""

    def __init__(self, record: IdempotencyRecord):
        self.record = record


def begin(request) -> tuple[str, str, str] | None:
    """Check the key for this request (inside its transaction). None when there is no key."""
    key = request.headers.get(HEADER)
    if key is None:
        return None
    if not key or len(key) > MAX_KEY:
        raise ProblemException("validation-error", f"{HEADER} must be 1–{MAX_KEY} characters")
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("idempotent requests must run in a transaction")
    client, fp = client_of(request), fingerprint(request)
    if not _try_lock(client, key):
        raise ProblemException("idempotency-in-flight", "a request with this Idempotency-Key is still in progress")
    record = IdempotencyRecord.objects.filter(client=client, key=key).first()
    if record is not None:
        if record.created_at < timezone.now() - retention():
            record.delete()
        elif record.fingerprint != fp:
            raise ProblemException(
                "idempotency-key-reused", f"{HEADER} {key!r} was already used with a different request"
            )
        else:
            raise Replay(record)
    return client, key, fp


def store(idem: tuple[str, str, str], response) -> None:
    """Keep a successful response for replay, in the change's transaction."""
    client, key, fp = idem
    if hasattr(response, "render") and not response.is_rendered:
        response.render()
    IdempotencyRecord.objects.create(
        client=client,
        key=key,
        fingerprint=fp,
        status_code=response.status_code,
        content_type=response.get("Content-Type", "application/json"),
        headers={h: response[h] for h in _KEPT_HEADERS if h in response and h != "Content-Type"},
        body=bytes(response.content),
    )


def replay_response(record: IdempotencyRecord) -> HttpResponse:
    resp = HttpResponse(bytes(record.body), status=record.status_code, content_type=record.content_type)
    for name, value in record.headers.items():
        resp[name] = value
    resp[REPLAYED_HEADER] = "true"
    return resp


def purge_expired(*, batch: int = 5000) -> int:
    """Delete records past retention, in batches (the periodic job)."""
    cutoff = timezone.now() - retention()
    total = 0
    while True:
        ids = list(IdempotencyRecord.objects.filter(created_at__lt=cutoff).values_list("id", flat=True)[:batch])
        if not ids:
            return total
        total += IdempotencyRecord.objects.filter(id__in=ids).delete()[0]
