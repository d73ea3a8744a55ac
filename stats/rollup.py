"""Folding the trigger's deltas into the counters (the beat job), and recounting them from
the work items (`manage.py stats_rebuild`, the tests and the benchmark's baseline).

The roll-up deletes a batch of deltas and adds them to the counter and hourly rows in one
transaction: a reader (stats.selectors), which adds the pending deltas to the rolled-up rows
in one statement, sees either both or neither. Two roll-ups never fold the same rows: on
PostgreSQL they take turns on an advisory lock (the second one skips its turn); on SQLite
writers are serialized anyway.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connection, connections, transaction
from django.utils.dateparse import parse_datetime

from stats.triggers import OPEN_SQL, TABLE, hour_of, not_after, seconds_between

BATCH = 50_000
UPSERT_ROWS = 500
_LOCK_KEY = 0x57A75  # pg advisory lock of the roll-up and the rebuild
# The hourly figures, in the order of stats_queuehour's columns after (queue_id, hour).
HOUR_FIELDS = (
    "created",
    "completed",
    "cancelled",
    "failed",
    "breached",
    "with_due",
    "on_time",
    "wait_n",
    "wait_s",
    "handle_n",
    "handle_s",
)
USER_HOUR_FIELDS = ("completed", "handle_n", "handle_s")
_DELTA_RETURNING = "queue_id, assignee_id, state, sla_state, item_created_at, n, at, " + ", ".join(HOUR_FIELDS)


def as_utc(value: Any) -> datetime | None:
    """A timestamp as read by a raw cursor (SQLite gives text) as an aware UTC datetime."""
    if value is None:
        return None
    if isinstance(value, str):
        value = parse_datetime(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def hour_start(value: Any) -> datetime:
    return as_utc(value).replace(minute=0, second=0, microsecond=0)


def db_time(value: datetime) -> Any:
    """A datetime as a raw-SQL parameter (on SQLite, the ORM's text form)."""
    return connection.ops.adapt_datetimefield_value(value)


def _upsert(conn, table: str, key: tuple[str, ...], fields: tuple[str, ...], rows: dict[tuple, list]) -> None:
    if not rows:
        return
    cols = (*key, *fields)
    adapt = conn.ops.adapt_datetimefield_value
    params = [[adapt(k) if isinstance(k, datetime) else k for k in keys] + list(vals) for keys, vals in rows.items()]
    row_sql = "(" + ", ".join(["%s"] * len(cols)) + ")"
    update = ", ".join(f"{f} = {table}.{f} + excluded.{f}" for f in fields)
    with conn.cursor() as cur:
        for i in range(0, len(params), UPSERT_ROWS):  # a few statements, not one round trip per key
            chunk = params[i : i + UPSERT_ROWS]
            cur.execute(
                f"INSERT INTO {table} ({', '.join(cols)}) VALUES {', '.join([row_sql] * len(chunk))} "
                f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {update}",
                [v for row in chunk for v in row],
            )


def _locked() -> bool:
    if connection.vendor != "postgresql":
        return True
    with connection.cursor() as cur:
        cur.execute("SELECT pg_try_advisory_xact_lock(%s)", [_LOCK_KEY])
        return cur.fetchone()[0]


def rollup(*, batch: int = BATCH) -> int:
    """Fold pending deltas into the counters, a batch per transaction, until none is left
    (or another roll-up holds the turn); returns how many were folded."""
    total = 0
    while True:
        with transaction.atomic():
            if not _locked():
                return total
            with connection.cursor() as cur:
                cur.execute(
                    "DELETE FROM stats_delta WHERE id IN (SELECT id FROM stats_delta ORDER BY id LIMIT %s) "
                    f"RETURNING {_DELTA_RETURNING}",
                    [batch],
                )
                rows = cur.fetchall()
            _fold(rows)
        total += len(rows)
        if len(rows) < batch:
            return total


def _fold(rows: list[tuple], *, counters: bool = True, conn=connection) -> None:
    queue_n: dict[tuple, list] = defaultdict(lambda: [0])
    user_n: dict[tuple, list] = defaultdict(lambda: [0])
    age_n: dict[tuple, list] = defaultdict(lambda: [0])
    queue_hour: dict[tuple, list] = defaultdict(lambda: [0] * len(HOUR_FIELDS))
    user_hour: dict[tuple, list] = defaultdict(lambda: [0] * len(USER_HOUR_FIELDS))
    for queue_id, assignee_id, state, sla_state, created_at, n, at, *figures in rows:
        if n and counters:
            queue_n[(queue_id, state, sla_state)][0] += n
            age_n[(queue_id, hour_start(created_at))][0] += n
            if assignee_id is not None:
                user_n[(queue_id, assignee_id, state)][0] += n
        if at is not None:
            hour = hour_start(at)
            acc = queue_hour[(queue_id, hour)]
            for i, v in enumerate(figures):
                acc[i] += v
            completed, handle_n, handle_s = figures[1], figures[9], figures[10]
            if completed and assignee_id is not None:
                u = user_hour[(queue_id, assignee_id, hour)]
                u[0] += completed
                u[1] += handle_n
                u[2] += handle_s
    _upsert(conn, "stats_queuecounter", ("queue_id", "state", "sla_state"), ("n",), queue_n)
    _upsert(conn, "stats_usercounter", ("queue_id", "user_id", "state"), ("n",), user_n)
    _upsert(conn, "stats_openage", ("queue_id", "hour"), ("n",), age_n)
    _upsert(conn, "stats_queuehour", ("queue_id", "hour"), HOUR_FIELDS, queue_hour)
    _upsert(conn, "stats_userhour", ("queue_id", "user_id", "hour"), USER_HOUR_FIELDS, user_hour)
    if user_n or age_n:
        with conn.cursor() as cur:  # keys nobody holds any more: keep the tables small
            cur.execute("DELETE FROM stats_usercounter WHERE n = 0")
            cur.execute("DELETE FROM stats_openage WHERE n = 0")


# --- the recount: the figures as a GROUP BY over the work items computes them -------------------


def _recount_sql(vendor: str) -> dict[str, str]:
    hour = lambda col: hour_of(vendor, col)  # noqa: E731
    secs = lambda a, b: seconds_between(vendor, a, b)  # noqa: E731
    completed, cancelled, failed = "state = 'COMPLETED'", "state = 'CANCELLED'", "state = 'FAILED'"
    on_time = f"{completed} AND due_at IS NOT NULL AND {not_after(vendor, 'completed_at', 'due_at')}"
    handled = f"{completed} AND assigned_at IS NOT NULL"
    flag = lambda c: f"CASE WHEN {c} THEN 1 ELSE 0 END"  # noqa: E731
    zero = lambda k: ", ".join(["0"] * k)  # noqa: E731
    return {
        "stats_queuecounter (queue_id, state, sla_state, n)": (
            f"SELECT queue_id, state, sla_state, COUNT(*) FROM {TABLE} WHERE state IN {OPEN_SQL} GROUP BY 1, 2, 3"
        ),
        "stats_usercounter (queue_id, user_id, state, n)": (
            f"SELECT queue_id, assignee_id, state, COUNT(*) FROM {TABLE} "
            f"WHERE state IN {OPEN_SQL} AND assignee_id IS NOT NULL GROUP BY 1, 2, 3"
        ),
        "stats_openage (queue_id, hour, n)": (
            f"SELECT queue_id, {hour('created_at')}, COUNT(*) FROM {TABLE} WHERE state IN {OPEN_SQL} GROUP BY 1, 2"
        ),
        f"stats_queuehour (queue_id, hour, {', '.join(HOUR_FIELDS)})": (
            f"SELECT queue_id, h, {', '.join(f'SUM({f})' for f in HOUR_FIELDS)} FROM ("
            f"SELECT queue_id, {hour('created_at')} AS h, 1 AS {HOUR_FIELDS[0]}, "
            + ", ".join(f"0 AS {f}" for f in HOUR_FIELDS[1:])
            + f" FROM {TABLE}"
            f" UNION ALL SELECT queue_id, {hour('closed_at')}, 0, {flag(completed)}, {flag(cancelled)}, "
            f"{flag(failed)}, 0, {flag(f'{completed} AND due_at IS NOT NULL')}, "
            f"{flag(on_time)}, 0, 0, {flag(handled)}, "
            f"CASE WHEN {handled} THEN {secs('completed_at', 'assigned_at')} ELSE 0 END FROM {TABLE} "
            f"WHERE state NOT IN {OPEN_SQL} AND closed_at IS NOT NULL"
            f" UNION ALL SELECT queue_id, {hour('breached_at')}, {zero(4)}, 1, {zero(6)} FROM {TABLE} "
            "WHERE breached_at IS NOT NULL"
            f" UNION ALL SELECT queue_id, {hour('assigned_at')}, {zero(7)}, 1, "
            f"{secs('assigned_at', 'COALESCE(offered_at, created_at)')}, 0, 0 FROM {TABLE} "
            "WHERE assigned_at IS NOT NULL"
            ") x GROUP BY queue_id, h"
        ),
        f"stats_userhour (queue_id, user_id, hour, {', '.join(USER_HOUR_FIELDS)})": (
            f"SELECT queue_id, assignee_id, {hour('closed_at')}, COUNT(*), SUM({flag(handled)}), "
            f"SUM(CASE WHEN {handled} THEN {secs('completed_at', 'assigned_at')} ELSE 0 END) FROM {TABLE} "
            f"WHERE {completed} AND assignee_id IS NOT NULL AND closed_at IS NOT NULL GROUP BY 1, 2, 3"
        ),
    }


REALTIME_TABLES = ("stats_queuecounter", "stats_usercounter", "stats_openage")
HISTORY_TABLES = ("stats_queuehour", "stats_userhour")


def recount(table: str, *, using: str = DEFAULT_DB_ALIAS) -> list[tuple]:
    """The rows `table` should hold, recounted from the work items with a GROUP BY."""
    conn = connections[using]
    for target, select in _recount_sql(conn.vendor).items():
        if target.split(" ")[0] == table:
            with conn.cursor() as cur:
                cur.execute(select)
                return cur.fetchall()
    raise KeyError(table)


def rebuild(*, history: bool = False, using: str = DEFAULT_DB_ALIAS) -> None:
    """Recount the real-time counters (and with `history`, the hourly tables) from the work
    items, and drop the pending deltas they already include. Writers of work items wait
    meanwhile (a SHARE lock on PostgreSQL) so that no change falls between the recount and
    the deltas. The hourly history recomputed from the items attributes an item's creation to
    its current queue, and a wait to its current assignment; items deleted since are lost."""
    conn = connections[using]
    with transaction.atomic(using=using), conn.cursor() as cur:
        if conn.vendor == "postgresql":
            cur.execute("SELECT pg_advisory_xact_lock(%s)", [_LOCK_KEY])
            cur.execute(f"LOCK TABLE {TABLE} IN SHARE MODE")
        cur.execute(f"DELETE FROM stats_delta RETURNING {_DELTA_RETURNING}")
        pending = cur.fetchall()
        if not history:  # the hourly rows stay: add the events not rolled up yet
            _fold(pending, counters=False, conn=conn)
        tables = REALTIME_TABLES + (HISTORY_TABLES if history else ())
        for target, select in _recount_sql(conn.vendor).items():
            name = target.split(" ")[0]
            if name in tables:
                cur.execute(f"DELETE FROM {name}")
                cur.execute(f"INSERT INTO {target} {select}")
