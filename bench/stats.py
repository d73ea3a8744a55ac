"""Statistics benchmark: `GET /stats/queues` (maintained counters) at 10k, 1M and 10M work items
against a GROUP BY recount of the same figures in the same run, and what the counters cost the
writers.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres .venv/bin/python bench/stats.py
    .venv/bin/python bench/stats.py --sizes 10000,1000000      # smaller

Like bench/claim_next.py the script creates its own database (`workstream_bench_stats`, or --db),
migrates it, seeds it with set-based `INSERT … SELECT generate_series` (the statistics trigger
switched off for the load, then `stats.rollup.rebuild(history=True)`, what `manage.py
stats_rebuild --history` does), measures, prints a table and drops the database (--keep keeps it).
The items grow in place from one size to the next: 20 queues, 200 holders (teams of 10, one per
queue), 90% open (offered, assigned, in progress, suspended; a tenth at risk, a seventh breached),
10% completed, created over the last 30 days.

  (a) at each size: `GET /stats/queues` as a supervisor (every queue, window PT24H; in-process
      through Django's test client), p50 and p99 of --requests calls, vs
      the real-time figures recounted by `SELECT queue_id, state, sla_state, count(*) … GROUP
      BY` over the open items (p50 of --recounts runs), after VACUUM ANALYZE. The caller sends a
      JWT (`Authorization: Bearer`, as API clients do: the token is checked and its user and
      groups read on every call); `--auth force` skips that (DRF's force_authenticate keeps one
      user instance, its roles cached, across calls), as runs before 2026-12-01 did. Also the read alone,
      `stats.selectors.queue_figures` (the HTTP call adds authentication, the access log's own
      committed INSERT and rendering). Targets: p50 ≤ 5 ms at the largest size, and flat: p50 at
      the largest / p50 at the smallest ≤ 1.5.
  (b) at the largest size, with 10,000 deltas pending (one set-based UPDATE moving 5,000 items
      between states, i.e. a few seconds of writes before the roll-up): the call's p50, and the
      roll-up that folds them.
  (c) what the trigger costs the writers: --lifecycles create → claim → start → complete
      lifecycles through the service layer with the trigger on and off, in alternating rounds
      (same run, same data), per lifecycle and the ratio.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from claim_next import bench_main, make_users, pct, print_table, seed_items  # noqa: E402 - the sibling's helpers

QUEUES = 20
HOLDERS = 200
P50_TARGET_MS = 5.0
FLAT_TARGET = 1.5
TRIGGERS = ("stats_workitem_ins", "stats_workitem_upd", "stats_workitem_del")


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--db", default="workstream_bench_stats")
    p.add_argument("--sizes", default="10000,1000000,10000000", help="work items at each step, ascending")
    p.add_argument("--requests", type=int, default=300)
    p.add_argument("--recounts", type=int, default=5)
    p.add_argument("--lifecycles", type=int, default=300)
    p.add_argument("--keep", action="store_true")
    p.add_argument(
        "--auth",
        choices=("jwt", "force"),
        default="jwt",
        help="jwt: a bearer token on each call, as clients send; force: DRF's force_authenticate (no token, "
        "no user lookup)",
    )
    p.add_argument(
        "--fast-load",
        action="store_true",
        help="drop the work-item table's indexes (the primary key aside) for each load and build them again "
        "afterwards, as a bulk load would: the same indexes in the end, much sooner",
    )
    p.add_argument(
        "--measure-only",
        action="store_true",
        help="measure (a) again on a database an earlier --keep run left (no seeding, nothing dropped)",
    )
    return p.parse_args()


def set_triggers(enabled: bool) -> None:
    from django.db import connection

    with connection.cursor() as cur:
        for name in TRIGGERS:
            cur.execute(f"ALTER TABLE workitems_workitem {'ENABLE' if enabled else 'DISABLE'} TRIGGER {name}")


def drop_indexes() -> list[str]:
    """Drop workitems_workitem's secondary indexes; returns the statements that make them again."""
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'workitems_workitem' "
            "AND indexname NOT IN (SELECT conname FROM pg_constraint)"
        )
        found = cur.fetchall()
        for name, _ in found:
            cur.execute(f'DROP INDEX "{name}"')
    return [d for _, d in found]


def create_indexes(defs: list[str]) -> None:
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute("SET maintenance_work_mem = '512MB'")
        for d in defs:
            cur.execute(d)


def seed(queues, holders, n: int) -> None:
    """`n` more items over the queues, in one statement (the trigger off: rebuild afterwards)."""
    q_ids = ",".join(str(q.pk) for q in queues)
    u_ids = ",".join(str(u.pk) for u in holders)
    team = len(holders) // len(queues)
    # g → state: 0-3 OFFERED, 4-5 ASSIGNED, 6-7 IN_PROGRESS, 8 SUSPENDED, 9 COMPLETED
    state = (
        "(ARRAY['OFFERED','OFFERED','OFFERED','OFFERED','ASSIGNED','ASSIGNED','IN_PROGRESS','IN_PROGRESS',"
        "'SUSPENDED','COMPLETED'])[mod(g, 10) + 1]"
    )
    held = "mod(g, 10) >= 4"
    created = "(now() - mod(g::bigint * 7919, 30 * 86400) * interval '1 second')"
    varying = {
        "queue_id": f"(ARRAY[{q_ids}])[mod(g, {len(queues)}) + 1]",
        "state": state,
        # teams: each queue's items are held by its own len(holders) / len(queues) people
        "assignee_id": f"CASE WHEN {held} THEN (ARRAY[{u_ids}])[mod(g, {len(queues)}) * {team} "
        f"+ mod(g / {len(queues)}, {team}) + 1] END",
        "assigned_at": f"CASE WHEN {held} THEN {created} + interval '5 minutes' END",
        "created_at": created,
        "offered_at": created,
        "completed_at": f"CASE WHEN mod(g, 10) = 9 THEN {created} + interval '1 hour' END",
        "closed_at": f"CASE WHEN mod(g, 10) = 9 THEN {created} + interval '1 hour' END",
        "due_at": f"{created} + interval '2 hours'",
        "sla_state": "CASE WHEN mod(g, 10) = 9 THEN 'met' WHEN mod(g, 7) = 0 THEN 'breached' "
        "WHEN mod(g, 7) = 1 THEN 'at_risk' ELSE 'on_track' END",
        "breached_at": f"CASE WHEN mod(g, 10) <> 9 AND mod(g, 7) = 0 THEN {created} + interval '2 hours' END",
    }
    seed_items(queues[0], n, varying_sql=varying)


def vacuum(url: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:  # VACUUM runs outside a transaction
        conn.execute("VACUUM (ANALYZE) workitems_workitem")
        conn.execute("VACUUM (ANALYZE)")


CPU: list[float] = []  # this process's CPU time per call of the last time_calls (ms)


def supervisor_client(user, auth: str):
    """A test client that calls as `user`: with a fresh access token (jwt), or force-authenticated."""
    from rest_framework.test import APIClient
    from rest_framework_simplejwt.tokens import AccessToken

    client = APIClient()
    if auth == "jwt":
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {AccessToken.for_user(user)}")
    else:
        client.force_authenticate(user)
    return client


def time_calls(user, auth: str, n: int) -> list[float]:
    """Wall time per call (ms); the CPU time each took in this process goes to CPU (on a loaded
    machine the wall time waits for a core, the CPU time does not)."""
    client = supervisor_client(user, auth)  # a token minted now: a long seeding outlives one
    for _ in range(20):  # warm up: plans, connections, imports
        assert client.get("/api/v1/stats/queues").status_code == 200
    out = []
    CPU.clear()
    for _ in range(n):
        c, t = time.process_time(), time.perf_counter()
        resp = client.get("/api/v1/stats/queues")
        out.append((time.perf_counter() - t) * 1000)
        CPU.append((time.process_time() - c) * 1000)
        assert resp.status_code == 200, resp.content[:500]
    return out


def time_selector(ids, n: int) -> list[float]:
    from stats import selectors

    out = []
    for _ in range(n):
        t = time.perf_counter()
        selectors.queue_figures(ids)
        out.append((time.perf_counter() - t) * 1000)
    return out


def time_recount(n: int) -> tuple[list[float], int]:
    from django.db import connection

    from stats.triggers import OPEN_SQL

    sql = (
        f"SELECT queue_id, state, sla_state, count(*) FROM workitems_workitem WHERE state IN {OPEN_SQL} "
        "GROUP BY 1, 2, 3"
    )
    out, rows = [], []
    for _ in range(n):
        with connection.cursor() as cur:
            t = time.perf_counter()
            cur.execute(sql)
            rows = cur.fetchall()
            out.append((time.perf_counter() - t) * 1000)
    return out, sum(r[3] for r in rows)


def check_figures(client) -> int:
    """The endpoint's open count equals the recount (the bench measures the right thing)."""
    from workitems.models import OPEN_STATES, WorkItem

    body = client.get("/api/v1/stats/queues").json()
    served = sum(q["open"] for q in body)
    assert served == WorkItem.objects.filter(state__in=OPEN_STATES).count(), "figures differ from the recount"
    return served


def lifecycles(svc, worker, queue, n: int) -> float:
    """Seconds per create → claim → start → complete through the services."""
    from workitems import services

    t = time.perf_counter()
    for i in range(n):
        item = services.work_item_create(
            actor=svc, data={"workflow_id": "bench-life", "run_id": str(i), "task_name": "t", "queue": queue.name}
        )
        services.work_item_claim(item_id=item.pk, actor=worker)
        services.work_item_start(item_id=item.pk, actor=worker)
        services.work_item_complete(item_id=item.pk, actor=worker, result={})
    return (time.perf_counter() - t) / n


def run(args, bench_url: str, t_start: float) -> int:
    from django.contrib.auth.models import Group
    from django.db import connection

    from stats import rollup
    from tests import factories
    from workitems.models import Queue

    sizes = [int(s) for s in args.sizes.split(",")]
    group = Group.objects.create(name="bench-team")
    queues = [Queue.objects.create(name=f"bench-{i:02d}", max_open=1_000_000) for i in range(QUEUES)]
    for q in queues:
        q.candidate_groups.set([group])
    holders = make_users("bh", HOLDERS, groups=[group])
    sam = factories.user("bench-sam", roles=["supervisor"])
    svc = factories.user("bench-svc", roles=["service"])
    worker = factories.user("bench-worker", roles=["worker"], groups=[group])
    client = supervisor_client(sam, "force")

    rows, p50s = [], {}
    have = 0
    for size in sizes:
        t = time.perf_counter()
        set_triggers(False)
        defs = drop_indexes() if args.fast_load else []
        seed(queues, holders, size - have)
        create_indexes(defs)
        set_triggers(True)
        seeded = time.perf_counter() - t
        t = time.perf_counter()
        rollup.rebuild(history=True)
        rebuilt = time.perf_counter() - t
        vacuum(bench_url)
        have = size
        open_n = check_figures(client)
        calls = time_calls(sam, args.auth, args.requests)
        reads = time_selector([q.pk for q in queues], args.requests)
        recount, recounted = time_recount(args.recounts)
        assert recounted == open_n
        p50s[size] = pct(calls, 50)
        print(
            f"{size:,} items ({open_n:,} open): seeded in {seeded:.0f}s, rebuilt in {rebuilt:.1f}s; "
            f"stats p50 {pct(calls, 50):.2f} ms p99 {pct(calls, 99):.2f} ms; queue_figures p50 {pct(reads, 50):.2f} "
            f"ms; recount p50 {pct(recount, 50):.0f} ms; load average {os.getloadavg()[0]:.1f}",
            flush=True,
        )
        rows.append(
            (
                f"GET /stats/queues at {size:,} items ({open_n:,} open, {QUEUES} queues; auth {args.auth})",
                f"p50 {pct(calls, 50):.2f} ms, p99 {pct(calls, 99):.2f} ms, Python CPU p50 {pct(CPU, 50):.2f} ms "
                "(queue_figures alone p50 "
                f"{pct(reads, 50):.2f} ms); GROUP BY recount p50 {pct(recount, 50):.1f} ms "
                f"({pct(recount, 50) / pct(calls, 50):.1f}x the call); load average {os.getloadavg()[0]:.1f}",
                f"p50 ≤ {P50_TARGET_MS:g} ms" if size == sizes[-1] else "",
                ("ok" if pct(calls, 50) <= P50_TARGET_MS else "MISSED") if size == sizes[-1] else "",
            )
        )
    flat = p50s[sizes[-1]] / p50s[sizes[0]]
    rows.append(
        (
            f"flat: p50 at {sizes[-1]:,} / p50 at {sizes[0]:,}",
            f"{flat:.2f}x",
            f"≤ {FLAT_TARGET}x",
            "ok" if flat <= FLAT_TARGET else "MISSED",
        )
    )

    # (b) pending deltas, then the roll-up that folds them
    with connection.cursor() as cur:
        cur.execute(
            "UPDATE workitems_workitem SET state = 'SUSPENDED', resume_state = 'OFFERED' WHERE id IN "
            "(SELECT id FROM workitems_workitem WHERE state = 'OFFERED' ORDER BY id DESC LIMIT 5000)"
        )
        cur.execute("SELECT count(*) FROM stats_delta")
        pending = cur.fetchone()[0]
    calls = time_calls(sam, args.auth, args.requests)
    t = time.perf_counter()
    folded = rollup.rollup()
    folding = (time.perf_counter() - t) * 1000
    check_figures(client)
    rows.append(
        (
            f"GET /stats/queues with {pending:,} deltas pending",
            f"p50 {pct(calls, 50):.2f} ms, p99 {pct(calls, 99):.2f} ms; the roll-up of {folded:,}: {folding:.0f} ms",
            "",
            "",
        )
    )

    # (c) the trigger's cost to the writers
    queue = queues[0]
    lifecycles(svc, worker, queue, 20)  # warm up
    on, off, rounds = [], [], 4
    for _ in range(rounds):  # alternating, so a change in the machine's load hits both alike
        on.append(lifecycles(svc, worker, queue, args.lifecycles // rounds))
        set_triggers(False)
        off.append(lifecycles(svc, worker, queue, args.lifecycles // rounds))
        set_triggers(True)
    per_on, per_off = sum(on) / rounds, sum(off) / rounds
    rollup.rebuild()
    rows.append(
        (
            f"create → claim → start → complete, {args.lifecycles} through the services",
            f"{per_on * 1000:.2f} ms with the trigger, {per_off * 1000:.2f} ms without ({per_on / per_off:.2f}x)",
            "",
            "",
        )
    )
    print_table(rows, t_start)
    return 0


def measure_again(args) -> int:
    from claim_next import server_url, setup_django, with_db

    os.environ.setdefault("SECRET_KEY", secrets.token_urlsafe(50))
    setup_django(with_db(server_url(), args.db))
    from django.contrib.auth import get_user_model

    from workitems.models import OPEN_STATES, Queue, WorkItem

    t_start = time.perf_counter()
    sam = get_user_model().objects.get(username="bench-sam")
    client = supervisor_client(sam, "force")
    queues = list(Queue.objects.filter(name__startswith="bench-"))
    size = WorkItem.objects.count()
    open_n = check_figures(client)
    calls = time_calls(sam, args.auth, args.requests)
    reads = time_selector([q.pk for q in queues], args.requests)
    recount, _ = time_recount(args.recounts)
    assert open_n == WorkItem.objects.filter(state__in=OPEN_STATES).count()
    row = (
        f"GET /stats/queues at {size:,} items ({open_n:,} open, {len(queues)} queues; auth {args.auth})",
        f"p50 {pct(calls, 50):.2f} ms, p99 {pct(calls, 99):.2f} ms, Python CPU p50 {pct(CPU, 50):.2f} ms "
        "(queue_figures alone p50 "
        f"{pct(reads, 50):.2f} ms); GROUP BY recount p50 {pct(recount, 50):.1f} ms "
        f"({pct(recount, 50) / pct(calls, 50):.1f}x the call); load average {os.getloadavg()[0]:.1f}",
        f"p50 ≤ {P50_TARGET_MS:g} ms",
        "ok" if pct(calls, 50) <= P50_TARGET_MS else "MISSED",
    )
    server, plan = server_time([q.pk for q in queues], 30)
    explained = ("the statement's execution in PostgreSQL (EXPLAIN ANALYZE)", f"p50 {server:.2f} ms", "", "")
    print_table([row, explained], t_start)
    print("\n" + plan)
    return 0


def server_time(ids, n: int) -> tuple[float, str]:
    """p50 of the queue_figures statement's execution time as PostgreSQL reports it, and its plan."""
    import json

    from django.db import connection
    from django.utils import timezone

    from stats import selectors

    now = timezone.now()
    sql, params = selectors._queue_sql(ids, selectors.window_start(selectors.DEFAULT_WINDOW, now), now)
    times = []
    with connection.cursor() as cur:
        for _ in range(n):
            cur.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + sql, params)
            doc = cur.fetchone()[0]
            times.append((json.loads(doc) if isinstance(doc, str) else doc)[0]["Execution Time"])
        cur.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql, params)
        plan = "\n".join(r[0] for r in cur.fetchall())
    return pct(times, 50), plan


def main() -> int:
    # Requests back to back would meet the per-user rate limit (100/s by default): lift it here.
    cfg = Path(tempfile.mkdtemp()) / "workstream.yaml"
    cfg.write_text("rateLimits: {default: 1000000/s}\n")
    os.environ.setdefault("WORKSTREAM_CONFIG", str(cfg))
    args = parse_args()
    if args.measure_only:
        return measure_again(args)
    return bench_main(args, run)


if __name__ == "__main__":
    sys.exit(main())
