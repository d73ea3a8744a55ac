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

With a context key ring (config/contextkeys.py), the stored body is encrypted under its primary
key, the client and key as associated data: the first answer to a create may hold the clear
values of encrypted context keys (for the creating client), and they are not kept in clear.
"""

from __future__ import annotations

import hashlib
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.http import HttpResponse, JsonResponse
from django.utils import timezone

from api.models import IdempotencyRecord
from api.problems import CONTENT_TYPE, ProblemException, problem_body
from config import contextkeys, wsconfig

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
_KEPT_HEADERS = ("Location", "ETag", "Content-Type")
MAX_KEY = 255
SEALED_BODY = b"\x00sealed-v1:"  # no JSON body starts with NUL: a record stored in clear reads as before


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
        body=_seal_body(client, key, bytes(response.content)),
    )


def _aad(client: str, key: str) -> bytes:
    return f"idempotency:{client}:{key}".encode()


def _seal_body(client: str, key: str, body: bytes) -> bytes:
    ring = settings.CONTEXT_KEY_RING
    if ring is None:
        return body
    key_id, blob = ring.encrypt(body, _aad(client, key))
    return SEALED_BODY + key_id.encode() + b":" + blob


def record_body(record: IdempotencyRecord) -> bytes:
    """The stored response's body, decrypted when it was stored sealed."""
    stored = bytes(record.body)
    if not stored.startswith(SEALED_BODY):
        return stored
    key_id, _, blob = stored[len(SEALED_BODY) :].partition(b":")
    ring = settings.CONTEXT_KEY_RING
    try:
        if ring is None:
            raise contextkeys.UnknownKey(key_id.decode())
        return ring.decrypt(key_id.decode(), blob, _aad(record.client, record.key))
    except (contextkeys.UnknownKey, contextkeys.NotAuthentic):
        raise ProblemException(
            "encryption-unavailable",
            f"the stored answer to {HEADER} {record.key!r} is encrypted with key {key_id.decode()!r}, "
            "which the context key ring does not hold or that does not authenticate it",
        ) from None


def replay_response(record: IdempotencyRecord) -> HttpResponse:
    try:
        body = record_body(record)
    except ProblemException as exc:  # outside the view: answered here, as the exception handler would
        problem = problem_body(exc.kind, str(exc.detail))
        return JsonResponse(problem, status=problem["status"], content_type=CONTENT_TYPE)
    resp = HttpResponse(body, status=record.status_code, content_type=record.content_type)
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
