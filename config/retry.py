"""Transient database conflicts retried server-side, around the outermost transaction.

A command that loses a deadlock (SQLSTATE 40P01), a serialization failure (40001) or a
lock wait cut short by `lock_timeout` (55P03, lock_not_available) did nothing: PostgreSQL
rolled its transaction back. Running it again from the start usually succeeds, so the
API view, the inbound bus consumer and the Celery sweeps run their unit of work through
`retry_transient`: up to `performance.transientRetries` more attempts (default 2, so 3
in all), each after a jittered exponential backoff, before the caller sees
`TransientConflict` (the API answers 503 `transient-conflict` with `Retry-After`).

Only the outermost transaction can be retried. Inside an outer `atomic` block the
conflict has aborted work this code did not start (and the locks that caused it are held
by the outer transaction), so `retry_transient` then runs `fn` once and lets the error
through for the outer level to handle. Nothing else is retried: a stale If-Match
(StaleVersion), a domain refusal or any other database error goes to the caller at once.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import TypeVar

from django.db import DatabaseError, transaction
from prometheus_client import Counter

from config import wsconfig

log = logging.getLogger(__name__)

T = TypeVar("T")

# SQLSTATE → name, for the log line and the metric's label.
TRANSIENT_SQLSTATES = {
    "40P01": "deadlock_detected",
    "40001": "serialization_failure",
    "55P03": "lock_not_available",
}
BACKOFF_BASE_SECONDS = 0.02
BACKOFF_MAX_SECONDS = 0.5
RETRY_AFTER_SECONDS = 1

TRANSIENT_RETRIES_TOTAL = Counter(
    "db_transient_retries_total",
    "Units of work run again after a deadlock, serialization failure or lock timeout",
    ["where", "sqlstate"],
)
TRANSIENT_EXHAUSTED_TOTAL = Counter(
    "db_transient_exhausted_total",
    "Units of work that met a transient conflict on every attempt (the caller got an error)",
    ["where", "sqlstate"],
)


class TransientConflict(Exception):
    """A transient conflict on every attempt; `sqlstate` names the last one. Nothing was changed."""

    def __init__(self, sqlstate: str, attempts: int):
        self.sqlstate = sqlstate
        self.attempts = attempts
        name = TRANSIENT_SQLSTATES[sqlstate]
        super().__init__(f"{name} (SQLSTATE {sqlstate}) on each of {attempts} attempt(s); nothing was changed")


def transient_sqlstate(exc: BaseException) -> str | None:
    """The SQLSTATE of `exc` (or of the driver error it wraps) when it is a transient conflict."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        state = getattr(exc, "sqlstate", None) or getattr(exc, "pgcode", None)
        if state in TRANSIENT_SQLSTATES:
            return state
        exc = exc.__cause__ or exc.__context__
    return None


def backoff(attempt: int) -> float:
    """Seconds to wait after failed attempt `attempt` (1-based): between half and all of an
    exponential cap (20 ms, 40 ms, … at most 500 ms), so that the two sides of a deadlock
    do not meet again in step."""
    cap = min(BACKOFF_MAX_SECONDS, BACKOFF_BASE_SECONDS * 2 ** (attempt - 1))
    return random.uniform(cap / 2, cap)


def attempts_configured() -> int:
    return 1 + int(wsconfig.get().performance.transientRetries)


def retry_transient(fn: Callable[[], T], *, where: str, attempts: int | None = None, using: str | None = None) -> T:
    """`fn()`, run again (at most `attempts` runs in all) while it fails with a transient conflict.

    `fn` must be the whole unit of work: it opens the outermost transaction itself. Inside
    an outer atomic block it runs once. Raises TransientConflict after the last attempt.
    """
    total = attempts_configured() if attempts is None else max(1, attempts)
    if transaction.get_connection(using).in_atomic_block:
        return fn()
    for attempt in range(1, total + 1):
        try:
            return fn()
        except DatabaseError as exc:
            state = transient_sqlstate(exc)
            if state is None:
                raise
            if attempt == total:
                TRANSIENT_EXHAUSTED_TOTAL.labels(where=where, sqlstate=state).inc()
                log.warning("%s: %s on attempt %d of %d; giving up", where, TRANSIENT_SQLSTATES[state], attempt, total)
                raise TransientConflict(state, total) from exc
            TRANSIENT_RETRIES_TOTAL.labels(where=where, sqlstate=state).inc()
            delay = backoff(attempt)
            log.info(
                "%s: %s on attempt %d of %d; again in %.0f ms",
                where,
                TRANSIENT_SQLSTATES[state],
                attempt,
                total,
                delay * 1000,
            )
            time.sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises
