"""Statistics reads: the interface of the statistics API, the console's dashboard tiles and the
admin. Everything here reads the maintained counters (stats.models), never a scan of the work
items, so a call costs the same at 10 thousand and 10 million items.

Each function takes the ids of the queues to report on; the caller decides which queues an
actor may see (`visible_queue_ids`, the same rule as the rest of the API). Figures are exact
at the moment of the read: the counters as last rolled up plus the deltas not rolled up yet,
added in one statement (stats/rollup.py).

Stable names and shapes (others build on them):
- `queue_figures(queue_ids, window) -> {queue_id: {...}}`
- `user_figures(queue_ids, window) -> [{...}]`
- `timeseries(metric, queue_ids, interval, since) -> [{"start", "count"}]`
- `age_distribution(queue_ids) -> [{"bucket", "min_seconds", "max_seconds", "count"}]`
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models import QuerySet
from django.utils import timezone

from config import db_router, sqlcache
from config.timefmt import isoformat_z
from directory.models import Profile
from stats.rollup import HOUR_FIELDS, as_utc, db_time, hour_start
from stats.triggers import OPEN_SQL, seconds_between
from workitems import queues as queue_reads
from workitems.models import Queue, State, WorkItem

HOUR = timedelta(hours=1)
DEFAULT_WINDOW = timedelta(hours=24)
MAX_WINDOW = timedelta(days=31)
DEFAULT_INTERVAL = HOUR
MAX_BUCKETS = 1000
METRICS = ("created", "completed", "breached")
# The age distribution's buckets: (label, from seconds, below seconds or None).
AGE_BUCKETS: tuple[tuple[str, int, int | None], ...] = (
    ("<1h", 0, 3600),
    ("1h-4h", 3600, 4 * 3600),
    ("4h-24h", 4 * 3600, 24 * 3600),
    ("1d-3d", 24 * 3600, 3 * 24 * 3600),
    ("3d-7d", 3 * 24 * 3600, 7 * 24 * 3600),
    (">7d", 7 * 24 * 3600, None),
)
_STATE_FIELDS = {
    State.OFFERED: "offered",
    State.ASSIGNED: "assigned",
    State.IN_PROGRESS: "in_progress",
    State.SUSPENDED: "suspended",
}


def visible_queue_ids(*, actor, name: str | None = None) -> list[int]:
    """Ids of the queues `actor` may see (workitems.queues.queue_list_for), or of the one
    named `name` (NotFound, a 404, when it does not exist or is not visible)."""
    if name is not None:
        return [queue_reads.queue_get_for(actor=actor, name=name).pk]
    return list(visible_queues(actor=actor).values_list("id", flat=True))


def visible_queues(*, actor) -> QuerySet:
    """The queues `actor` may see (workitems.queues.queue_list_for) as a query of their ids, not
    run: `queue_figures` reads it as a subquery, so the figures and who sees them are one
    statement (one round trip fewer on the hot `GET /stats/queues`)."""
    return queue_reads.queue_list_for(actor=actor).prefetch_related(None).select_related(None).order_by().values("id")


def window_name(window: timedelta) -> str:
    """A window of whole hours as ISO 8601 (PT24H)."""
    return f"PT{max(1, int(window / HOUR))}H"


def window_start(window: timedelta, now: datetime | None = None) -> datetime:
    """The start of a window of whole hours that ends now: the current hour and the
    window's other hours before it (PT24H at 13:20: from 14:00 yesterday)."""
    hours = max(1, int(window / HOUR))
    return hour_start(now or timezone.now()) - (hours - 1) * HOUR


def _in(ids: Collection[int] | QuerySet) -> str:
    """`= ANY(%s)` on PostgreSQL (one array parameter, whatever the number of queues: the
    statement's text and its parameters stay few, so it is prepared once), else `IN (%s, …)`;
    `IN (subquery)` for a query of ids (`visible_queues`)."""
    if isinstance(ids, QuerySet):
        return f"IN ({ids.query.sql_with_params()[0]})"
    if connection.vendor == "postgresql":
        return "= ANY(%s)"
    return "IN (" + ", ".join(["%s"] * len(ids)) + ")"


def _ids(ids: Collection[int] | QuerySet) -> list[Any]:
    """The parameters of one `_in(ids)`."""
    if isinstance(ids, QuerySet):
        return list(ids.query.sql_with_params()[1])
    return [list(ids)] if connection.vendor == "postgresql" else list(ids)


def _rows(sql: str, params: list[Any]) -> list[tuple]:
    # a replica's connection inside db_router.reporting() (when one is fresh enough); each
    # statement prepared, so PostgreSQL plans it once per connection (the figures' union of
    # five reads took a third of its time in planning)
    with sqlcache.prepared_cursor(db_router.read_connection()) as cur:
        cur.execute(sql, params)
        return cur.fetchall()


def _held_by_user(ids: list[int]) -> list[tuple]:
    """(queue id, user id, username, held open items) with at least one."""
    users = get_user_model()._meta.db_table
    return _rows(
        f"SELECT x.queue_id, x.user_id, u.username, SUM(x.n) FROM ("
        f"SELECT queue_id, user_id, n FROM stats_usercounter WHERE queue_id {_in(ids)} "
        "UNION ALL SELECT queue_id, assignee_id, n FROM stats_delta "
        f"WHERE n <> 0 AND assignee_id IS NOT NULL AND queue_id {_in(ids)}"
        f") x JOIN {users} u ON u.id = x.user_id GROUP BY x.queue_id, x.user_id, u.username HAVING SUM(x.n) > 0",
        [*_ids(ids), *_ids(ids)],
    )


def _mean(total: float, n: int) -> float | None:
    return round(total / n, 1) if n else None


def _window_figures(sums: dict[str, float] | None) -> dict[str, Any]:
    s = sums or dict.fromkeys(HOUR_FIELDS, 0)
    return {
        "created": int(s["created"]),
        "completed": int(s["completed"]),
        "cancelled": int(s["cancelled"]),
        "failed": int(s["failed"]),
        "sla_compliance": round(s["on_time"] / s["with_due"], 4) if s["with_due"] else None,
        "avg_wait_seconds": _mean(s["wait_s"], int(s["wait_n"])),
        "avg_handle_seconds": _mean(s["handle_s"], int(s["handle_n"])),
    }


def queue_figures(
    queue_ids: Collection[int] | QuerySet, window: timedelta = DEFAULT_WINDOW
) -> dict[int, dict[str, Any]]:
    """{queue id: figures} for each existing queue in `queue_ids` (ids, or a query of them:
    `visible_queues`).

    Real time: `open` (every open state), `offered`, `assigned`, `in_progress`, `suspended`,
    `unassigned` (open and held by nobody), `at_risk` and `breached` (open items by their
    `sla_state`), `oldest_age_seconds` (None when nothing is open), `max_open` and
    `utilization` (open / max_open, None without a limit), `per_user_load` ([{user, open}]
    most loaded first). Over `window` (whole hours ending now, `window_start`): `created`,
    `completed`, `cancelled`, `failed`, `sla_compliance` (share of the completed items with a
    deadline completed by it; None when there are none), `avg_wait_seconds` (put up → handed
    out: create → first assignment for an item handed out once; a released or moved item
    waits again from its new offer), `avg_handle_seconds` (last assignment → completion).
    Also `queue` (its name), `window` (ISO 8601) and `window_start`."""
    ids = queue_ids if isinstance(queue_ids, QuerySet) else sorted(set(queue_ids))
    if not isinstance(ids, QuerySet) and not ids:
        return {}
    now = timezone.now()
    start = window_start(window, now)
    out: dict[int, dict[str, Any]] = {}
    load: dict[int, list[dict[str, Any]]] = defaultdict(list)
    sums: dict[int, dict[str, float]] = {}
    counts = []
    for kind, qid, a, b, *v in _rows(*_queue_sql(ids, start, now)):
        if kind == "q":
            max_open, age = v[0], v[1]
            out[qid] = {
                "queue": a,
                "open": 0,
                **dict.fromkeys(_STATE_FIELDS.values(), 0),
                "unassigned": 0,
                "at_risk": 0,
                "breached": 0,
                "oldest_age_seconds": None if age is None else max(0, int(age)),
                "max_open": None if max_open is None else int(max_open),
                "utilization": None,
                "window": window_name(window),
                "window_start": isoformat_z(start),
            }
        elif kind == "o":
            counts.append((qid, a, b, int(v[0])))
        elif kind == "u":
            load[qid].append({"user": a, "open": int(v[0])})
        else:
            sums[qid] = dict(zip(HOUR_FIELDS, v, strict=True))
    for qid, state, sla_state, n in counts:
        fig = out[qid]
        fig["open"] += n
        if state in _STATE_FIELDS:
            fig[_STATE_FIELDS[state]] += n
        if sla_state in ("at_risk", "breached"):
            fig[sla_state] += n
    for qid, fig in out.items():
        users = sorted(load[qid], key=lambda u: (-u["open"], u["user"]))
        fig["unassigned"] = fig["open"] - sum(u["open"] for u in users)
        if fig["max_open"]:
            fig["utilization"] = round(fig["open"] / fig["max_open"], 4)
        fig.update(_window_figures(sums.get(qid)))
        fig["per_user_load"] = users
    return out


def _queue_sql(ids: list[int] | QuerySet, start: datetime, now: datetime) -> tuple[str, list[Any]]:
    """One statement for all of queue_figures (a round trip, a plan): rows tagged q (the queue:
    name, max_open, age of its oldest open item by the partial index), o (open counts by state
    and SLA state), u (held per user), w (the window's sums); counters plus pending deltas."""
    vendor = connection.vendor
    pad = lambda k: ", ".join(["0"] * k)  # noqa: E731 - the columns a branch does not use
    users = get_user_model()._meta.db_table
    oldest = (
        f"(SELECT w.created_at FROM {WorkItem._meta.db_table} w WHERE w.queue_id = q.id "
        f"AND w.state IN {OPEN_SQL} ORDER BY w.created_at LIMIT 1)"
    )
    width = len(HOUR_FIELDS)
    cols = ", ".join(HOUR_FIELDS)
    # The pending deltas are read once (one scan of a table the roll-up keeps short).
    sql = (
        f"WITH d AS MATERIALIZED (SELECT queue_id, assignee_id, state, sla_state, n, at, {cols} FROM stats_delta "
        f"WHERE queue_id {_in(ids)}) "
        f"SELECT 'q' AS kind, q.id AS queue_id, q.name AS a, '' AS b, q.max_open AS v0, "
        f"{seconds_between(vendor, '%s', oldest)} AS v1, {pad(width - 2)} "
        f"FROM {Queue._meta.db_table} q WHERE q.id {_in(ids)} "
        f"UNION ALL SELECT 'o', queue_id, state, sla_state, SUM(n), {pad(width - 1)} FROM ("
        f"SELECT queue_id, state, sla_state, n FROM stats_queuecounter WHERE queue_id {_in(ids)} "
        "UNION ALL SELECT queue_id, state, sla_state, n FROM d WHERE n <> 0"
        ") c GROUP BY queue_id, state, sla_state "
        f"UNION ALL SELECT 'u', x.queue_id, u.username, '', SUM(x.n), {pad(width - 1)} FROM ("
        f"SELECT queue_id, user_id, n FROM stats_usercounter WHERE queue_id {_in(ids)} "
        "UNION ALL SELECT queue_id, assignee_id, n FROM d WHERE n <> 0 AND assignee_id IS NOT NULL"
        f") x JOIN {users} u ON u.id = x.user_id GROUP BY x.queue_id, u.username HAVING SUM(x.n) > 0 "
        f"UNION ALL SELECT 'w', queue_id, '', '', {', '.join(f'SUM({f})' for f in HOUR_FIELDS)} FROM ("
        f"SELECT queue_id, {cols} FROM stats_queuehour WHERE queue_id {_in(ids)} AND hour >= %s "
        f"UNION ALL SELECT queue_id, {cols} FROM d WHERE at IS NOT NULL AND at >= %s) h GROUP BY queue_id"
    )
    return sql, [*_ids(ids), db_time(now), *_ids(ids) * 4, db_time(start), db_time(start)]


def user_figures(queue_ids: Collection[int], window: timedelta = DEFAULT_WINDOW) -> list[dict[str, Any]]:
    """Per user of the queues in `queue_ids` (members of their candidate groups, and anyone
    holding or having completed an item there in `window`), by username: `user`, `open`
    (items held in these queues now), `capacity` (the profile's limit across all queues, None
    for none), `completed_in_window`, `avg_handle_seconds` (assignment → completion, over the
    window) and `available` (active and not out of office now)."""
    ids = sorted(set(queue_ids))
    if not ids:
        return []
    now = timezone.now()
    start = window_start(window, now)
    held: dict[int, int] = defaultdict(int)
    for _qid, uid, _name, n in _held_by_user(ids):
        held[uid] += int(n)
    done = _rows(
        "SELECT user_id, SUM(completed), SUM(handle_n), SUM(handle_s) FROM ("
        f"SELECT user_id, completed, handle_n, handle_s FROM stats_userhour WHERE queue_id {_in(ids)} "
        "AND hour >= %s UNION ALL SELECT assignee_id, completed, handle_n, handle_s FROM stats_delta "
        f"WHERE completed > 0 AND assignee_id IS NOT NULL AND at >= %s AND queue_id {_in(ids)}"
        ") x GROUP BY user_id",
        [*_ids(ids), db_time(start), db_time(start), *_ids(ids)],
    )
    completed = {uid: (int(c), int(hn), hs) for uid, c, hn, hs in done}
    User = get_user_model()
    members = User.objects.filter(groups__workstream_queues__in=ids).values_list("id", flat=True)
    user_ids = set(members) | set(held) | set(completed)
    profiles = {p.user_id: p for p in Profile.objects.filter(user_id__in=user_ids)}
    out = []
    for user in User.objects.filter(pk__in=user_ids).order_by("username"):
        profile = profiles.get(user.pk)
        c, hn, hs = completed.get(user.pk, (0, 0, 0.0))
        out.append(
            {
                "user": user.username,
                "open": held.get(user.pk, 0),
                "capacity": profile.capacity if profile else None,
                "completed_in_window": c,
                "avg_handle_seconds": _mean(hs, hn),
                "available": user.is_active and not (profile and profile.is_out_of_office(now)),
            }
        )
    return out


def timeseries(
    metric: str,
    queue_ids: Collection[int],
    interval: timedelta = DEFAULT_INTERVAL,
    since: datetime | None = None,
) -> list[dict[str, Any]]:
    """[{start, count}] of `metric` (created, completed or breached) in the queues, one entry
    per `interval` (whole hours) from the hour of `since` (default: 24 hours ago) to now,
    empty buckets included; at most MAX_BUCKETS, the latest (a `since` further back starts
    that many intervals before now, aligned to its hour), none for a `since` in the future.
    ValueError for an unknown metric or an interval that is not whole hours."""
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {', '.join(METRICS)}")
    if interval < HOUR or interval % HOUR:
        raise ValueError("interval must be a whole number of hours")
    now = timezone.now()
    first = hour_start(since or now - DEFAULT_WINDOW)
    count = (hour_start(now) - first) // interval + 1 if first <= now else 0
    if count > MAX_BUCKETS:
        first += (count - MAX_BUCKETS) * interval
        count = MAX_BUCKETS
    buckets = [0] * max(count, 0)
    ids = sorted(set(queue_ids))
    if ids and buckets:
        rows = _rows(
            f"SELECT hour, {metric} FROM stats_queuehour WHERE queue_id {_in(ids)} AND hour >= %s "
            f"AND {metric} > 0 UNION ALL SELECT at, {metric} FROM stats_delta WHERE {metric} > 0 "
            f"AND at >= %s AND queue_id {_in(ids)}",
            [*_ids(ids), db_time(first), db_time(first), *_ids(ids)],
        )
        for at, n in rows:
            i = (as_utc(at) - first) // interval
            if 0 <= i < len(buckets):
                buckets[i] += int(n)
    return [{"start": isoformat_z(first + i * interval), "count": n} for i, n in enumerate(buckets)]


def age_distribution(queue_ids: Collection[int]) -> list[dict[str, Any]]:
    """How old the open items of the queues are, in AGE_BUCKETS: [{bucket, min_seconds,
    max_seconds (None for the last), count}]. Ages are to the hour: an item counts as old as
    the start of the hour it was created in."""
    ids = sorted(set(queue_ids))
    counts = [0] * len(AGE_BUCKETS)
    if ids:
        now = timezone.now()
        rows = _rows(
            f"SELECT hour, n FROM stats_openage WHERE queue_id {_in(ids)} "
            f"UNION ALL SELECT item_created_at, n FROM stats_delta WHERE n <> 0 AND queue_id {_in(ids)}",
            [*_ids(ids), *_ids(ids)],
        )
        for created_hour, n in rows:
            age = (now - hour_start(created_hour)).total_seconds()
            for i, (_label, low, high) in enumerate(AGE_BUCKETS):
                if age >= low and (high is None or age < high):
                    counts[i] += int(n)
                    break
            else:
                counts[0] += int(n)  # created "in the future" (a clock ahead): the youngest
    return [
        {"bucket": label, "min_seconds": low, "max_seconds": high, "count": counts[i]}
        for i, (label, low, high) in enumerate(AGE_BUCKETS)
    ]
