"""Read replicas: reporting reads go to a streaming replica, everything that must be fresh to
the primary.

A read goes to a replica (settings.DATABASE_REPLICAS, from DATABASE_REPLICA_URL) only when all
of these hold, else to the primary:

- it runs inside `reporting()` (a context manager and decorator): the statistics endpoints,
  the console's dashboard figures and queue figures, the audit search;
- no transaction is open on the primary (a read inside a change sees the change's own rows);
- nothing was written in this request (read-your-writes): a model write, a `select_for_update`
  or an unsafe HTTP method (POST, PUT, PATCH, DELETE: a command) keeps the rest of the request
  on the primary. `FreshReadsMiddleware` starts each request with a clean slate; outside a
  request (Celery tasks, commands) a write keeps the thread on the primary, and
  `request_scope()` starts a scope of its own;
- the replica is reachable and its lag is at most settings.DATABASE_REPLICA_MAX_LAG seconds.

The lag is measured at most once a second per replica and process (`CHECK_SECONDS`): a replica
that has replayed the primary's current WAL position is caught up (lag 0, however long ago
its last replayed transaction was: an idle primary is no lag); otherwise the lag is the age of
its last replayed transaction, `now() - pg_last_xact_replay_timestamp()`, which bounds how old
what it shows can be. A replica that cannot be reached (or answers an error) is left out for
the same period. The raw-SQL reports use `read_connection()`, the ORM's reads the router.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import random
import threading
import time
from collections.abc import Iterator

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections

log = logging.getLogger(__name__)

CHECK_SECONDS = 1.0  # how long a replica's measured lag (or unreachability) is trusted
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

_reporting: contextvars.ContextVar[bool] = contextvars.ContextVar("db_reporting", default=False)
_wrote: contextvars.ContextVar[bool] = contextvars.ContextVar("db_wrote", default=False)

_health: dict[str, tuple[float, float | None]] = {}  # alias → (measured at, lag in seconds or None)
_health_lock = threading.Lock()


def replicas() -> list[str]:
    return list(getattr(settings, "DATABASE_REPLICAS", ()))


class reporting(contextlib.ContextDecorator):
    """Marks a block (or, as `@reporting()`, a function) as reporting reads: they may be served
    by a replica, up to DATABASE_REPLICA_MAX_LAG seconds behind the primary."""

    def _recreate_cm(self):
        return type(self)()  # each call of a decorated function its own token (threads share the function)

    def __enter__(self):
        self._token = _reporting.set(True)
        return self

    def __exit__(self, *exc):
        _reporting.reset(self._token)
        return False


@contextlib.contextmanager
def request_scope(*, wrote: bool = False) -> Iterator[None]:
    """A scope of read-your-writes tracking (a request; a job): writes made before it do not
    keep its reads on the primary; writes inside it do, until it ends."""
    token = _wrote.set(wrote)
    try:
        yield
    finally:
        _wrote.reset(token)


def wrote() -> None:
    """Note a write in the current scope: its later reads go to the primary."""
    _wrote.set(True)


class FreshReadsMiddleware:
    """Each request its own read-your-writes scope; a command (an unsafe method) reads from the
    primary throughout."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        with request_scope(wrote=request.method in UNSAFE_METHODS):
            return self.get_response(request)


def forget() -> None:
    """Drop the measured lags: the next reporting read measures again."""
    with _health_lock:
        _health.clear()


def _measure(alias: str) -> float | None:
    """The replica's lag in seconds (0 when caught up), None when it cannot be asked."""
    try:
        with connections[DEFAULT_DB_ALIAS].cursor() as cur:
            cur.execute("SELECT pg_current_wal_lsn()::text")
            primary_lsn = cur.fetchone()[0]
        with connections[alias].cursor() as cur:
            cur.execute(
                "SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn() >= %s::pg_lsn, "
                "EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp())",
                [primary_lsn],
            )
            in_recovery, caught_up, age = cur.fetchone()
    except DatabaseError as exc:
        log.warning("replica %s unreachable, reading from the primary: %s", alias, exc)
        with contextlib.suppress(DatabaseError):
            connections[alias].close()
        return None
    if not in_recovery or caught_up:
        return 0.0  # a primary (a test mirror) or a replica that has replayed all there is
    return float(age) if age is not None else float("inf")


def lag(alias: str) -> float | None:
    """The replica's lag as last measured (again when older than CHECK_SECONDS); None: unreachable."""
    now = time.monotonic()
    with _health_lock:
        cached = _health.get(alias)
    if cached is not None and now - cached[0] < CHECK_SECONDS:
        return cached[1]
    value = _measure(alias)
    if value is not None and value > settings.DATABASE_REPLICA_MAX_LAG:
        log.warning("replica %s is %.1f s behind, reading from the primary", alias, value)
    with _health_lock:
        _health[alias] = (now, value)
    return value


def read_alias() -> str:
    """The alias a read should use here and now: a fresh-enough replica or the primary."""
    aliases = replicas()
    if not aliases or not _reporting.get() or _wrote.get() or connections[DEFAULT_DB_ALIAS].in_atomic_block:
        return DEFAULT_DB_ALIAS
    limit = settings.DATABASE_REPLICA_MAX_LAG
    usable = [a for a in aliases if (measured := lag(a)) is not None and measured <= limit]
    return random.choice(usable) if usable else DEFAULT_DB_ALIAS


def read_connection():
    """The connection for a raw-SQL read (the reports' cursors): read_alias()'s."""
    return connections[read_alias()]


class ReplicaRouter:
    """settings.DATABASE_ROUTERS: with no replica configured it decides nothing (Django's own
    routing); with replicas, reads follow read_alias() and writes go to the primary."""

    def db_for_read(self, model, **hints):
        if not replicas():
            return None
        alias = read_alias()
        if alias != DEFAULT_DB_ALIAS:
            return alias
        # Not a reporting read: the primary, also for an object that came from a replica.
        instance = hints.get("instance")
        return DEFAULT_DB_ALIAS if instance is not None and instance._state.db in replicas() else None

    def db_for_write(self, model, **hints):
        wrote()
        if not replicas():
            return None
        instance = hints.get("instance")
        # An object read from a replica is saved to the primary (never to the read-only replica).
        return DEFAULT_DB_ALIAS if instance is not None and instance._state.db in replicas() else None

    def allow_relation(self, obj1, obj2, **hints):
        same = {DEFAULT_DB_ALIAS, *replicas()}
        return True if obj1._state.db in same and obj2._state.db in same else None

    def allow_migrate(self, db, app_label, **hints):
        return False if db in replicas() else None
