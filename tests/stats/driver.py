"""Random commands through the service layer, and the comparison of the maintained
statistics with a recount: shared by the hypothesis test and the racing processes."""

from __future__ import annotations

import random
from datetime import timedelta

from django.db import connection
from django.utils import timezone

from stats import rollup
from workitems import services
from workitems.errors import WorkstreamError
from workitems.models import WorkItem

OPS = (
    "create",
    "claim",
    "assign",
    "start",
    "complete",
    "fail",
    "cancel",
    "suspend",
    "resume",
    "release",
    "move",
    "delegate",
    "escalate",
    "sla_scan",
    "rollup",
)
DUES = ("none", "past", "soon", "far")
SOURCES = {
    "claim": ["OFFERED"],
    "assign": ["OFFERED"],
    "start": ["ASSIGNED"],
    "complete": ["IN_PROGRESS"],
    "fail": ["IN_PROGRESS"],
    "release": ["ASSIGNED"],
    "resume": ["SUSPENDED"],
    "delegate": ["ASSIGNED", "IN_PROGRESS"],
    "suspend": ["OFFERED", "ASSIGNED", "IN_PROGRESS"],
}


def _due(kind: str):
    now = timezone.now()
    return {
        "none": None,
        "past": now - timedelta(hours=1),
        "soon": now + timedelta(seconds=2),
        "far": now + timedelta(days=30),
    }[kind]


def step(op: str, pick: int, users: dict, queues: list[str], choice: int) -> str:
    """Fire one command; `pick` chooses the item (among the newest ones), `choice` the user,
    queue or deadline. Returns what happened ("refused" when the domain said no)."""
    workers = [users["alice"], users["carol"]]
    if op == "create":
        due = _due(DUES[choice % len(DUES)])
        data = {"workflow_id": "stats", "task_name": "t", "queue": queues[choice % len(queues)]}
        if due is not None:
            data["due_at"] = due.isoformat()
        if choice % 3 == 0:
            data["assignee"] = workers[choice % 2].username  # push to a named user
        services.work_item_create(actor=users["svc"], data=data)
        return "created"
    if op == "sla_scan":
        services.sla_scan(now=timezone.now() + timedelta(seconds=3 * (choice % 3)))
        return "scanned"
    if op == "rollup":
        rollup.rollup(batch=1 + choice % 7)
        return "rolled up"
    # Mostly an item the command can apply to (else random runs idle in refusals), sometimes any.
    items = WorkItem.objects.order_by("-id")
    if op in SOURCES and choice % 5:
        items = items.filter(state__in=SOURCES[op])
    ids = list(items.values_list("id", flat=True)[:12])
    if not ids:
        return "nothing"
    item = WorkItem.objects.get(pk=ids[pick % len(ids)])
    holder = item.assignee or workers[choice % 2]
    kwargs: dict = {"item_id": item.pk}
    if op in ("claim", "start", "complete", "fail"):
        kwargs["actor"] = holder
    elif op == "release":
        kwargs["actor"] = holder if choice % 2 else users["sam"]
    else:
        kwargs["actor"] = users["sam"]
    if op in ("assign", "delegate"):
        kwargs["user"] = workers[choice % 2]
    if op == "complete":
        kwargs["result"] = {"ok": True}
    if op in ("fail", "cancel", "suspend", "escalate"):
        kwargs["reason"] = op
    if op == "move":
        kwargs["queue"] = queues[(queues.index(item.queue.name) + 1) % len(queues)]
    try:
        services.COMMANDS[op](**kwargs)
    except WorkstreamError:
        return "refused"
    return op


def random_steps(rng: random.Random, n: int, users: dict, queues: list[str]) -> list[str]:
    return [step(rng.choice(OPS), rng.randrange(100), users, queues, rng.randrange(1000)) for _ in range(n)]


# --- maintained vs recount -------------------------------------------------------------------------

_PENDING = {
    "stats_queuecounter": (
        "SELECT queue_id, state, sla_state, SUM(n) FROM (SELECT queue_id, state, sla_state, n FROM stats_queuecounter "
        "UNION ALL SELECT queue_id, state, sla_state, n FROM stats_delta) x GROUP BY 1, 2, 3"
    ),
    "stats_usercounter": (
        "SELECT queue_id, user_id, state, SUM(n) FROM (SELECT queue_id, user_id, state, n FROM stats_usercounter "
        "UNION ALL SELECT queue_id, assignee_id, state, n FROM stats_delta WHERE assignee_id IS NOT NULL) x "
        "GROUP BY 1, 2, 3"
    ),
    "stats_openage": (
        "SELECT queue_id, hour, SUM(n) FROM (SELECT queue_id, hour, n FROM stats_openage "
        "UNION ALL SELECT queue_id, date_trunc('hour', item_created_at, 'UTC'), n FROM stats_delta) x GROUP BY 1, 2"
    ),
}


def _rows(sql: str) -> list[tuple]:
    with connection.cursor() as cur:
        cur.execute(sql)
        return cur.fetchall()


def nonzero(rows) -> set[tuple]:
    return {tuple(r) for r in rows if r[-1]}


def realtime_mismatches(*, rolled_up: bool) -> dict[str, tuple[set, set]]:
    """Per counter table, (maintained − recount, recount − maintained); empty when they agree.
    `rolled_up`: compare the tables alone (no delta pending), else tables plus pending deltas."""
    out = {}
    for table in rollup.REALTIME_TABLES:
        maintained = nonzero(_rows(f"SELECT * FROM {table}")) if rolled_up else nonzero(_rows(_PENDING[table]))
        if rolled_up:
            maintained = {r[1:] for r in maintained}  # drop the id column
        recount = nonzero(rollup.recount(table))
        if maintained != recount:
            out[table] = (maintained - recount, recount - maintained)
    return out


def hourly_mismatches() -> list[str]:
    """The rolled-up hourly rows against the recount, for what the items still tell exactly:
    closing events per (queue, hour), creations and breaches per hour (an item may have moved
    since: the recount only knows its queue now)."""
    fields = rollup.HOUR_FIELDS
    got = {(r[1], r[2]): dict(zip(fields, r[3:], strict=True)) for r in _rows("SELECT * FROM stats_queuehour")}
    want = {(r[0], r[1]): dict(zip(fields, r[2:], strict=True)) for r in rollup.recount("stats_queuehour")}
    problems = []
    exact = ("completed", "cancelled", "failed", "with_due", "on_time", "handle_n")
    for key in set(got) | set(want):
        g, w = got.get(key, dict.fromkeys(fields, 0)), want.get(key, dict.fromkeys(fields, 0))
        for f in exact:
            if g[f] != w[f]:
                problems.append(f"{key} {f}: maintained {g[f]}, recount {w[f]}")
        if abs(g["handle_s"] - w["handle_s"]) > 0.01:
            problems.append(f"{key} handle_s: maintained {g['handle_s']}, recount {w['handle_s']}")
    for f in ("created", "breached"):
        per_hour_got, per_hour_want = {}, {}
        for (_, hour), v in got.items():
            per_hour_got[hour] = per_hour_got.get(hour, 0) + v[f]
        for (_, hour), v in want.items():
            per_hour_want[hour] = per_hour_want.get(hour, 0) + v[f]
        if {h: n for h, n in per_hour_got.items() if n} != {h: n for h, n in per_hour_want.items() if n}:
            problems.append(f"{f} per hour: maintained {per_hour_got}, recount {per_hour_want}")
    # (queue, user, hour, completed, handle_n) of each user's completions
    users_got = {tuple(r[1:6]) for r in _rows("SELECT * FROM stats_userhour") if r[4]}
    users_want = {tuple(r[:5]) for r in rollup.recount("stats_userhour") if r[3]}
    if users_got != users_want:
        problems.append(f"userhour: maintained {sorted(users_got)}, recount {sorted(users_want)}")
    return problems
