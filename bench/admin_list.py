"""Operator admin benchmark: the work-item change list (and the item and queue pages) as the
table grows to 10M items, against the bare SELECT of the same page measured in the same run.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres .venv/bin/python bench/admin_list.py
    BENCH_ADMIN_SIZES=10000,100000 .venv/bin/python bench/admin_list.py      # smaller

Like bench/claim_next.py the script creates its own database (`workstream_bench_admin`, or
--db), migrates it, seeds it with set-based `INSERT … SELECT generate_series` (in batches of
1M rows, never the ORM row by row), measures, prints a table and the plans, and drops the
database (--keep keeps it). The sizes are cumulative (10k, then grown to 1M, then to 10M).

The items: 20 queues; 80% completed (SLA met), 5% cancelled, 15% open (offered, assigned, in
progress, suspended) of which 2/3 have a due date: 5% of those overdue (SLA breached), 3% at
risk; one in 97 items escalated once, one in 997 twice.

At each size, as a superuser through Django's test client (the whole request: middleware,
session, admin, templates), p50/p99 of --samples requests of:

  - the change list, unfiltered (first page, 100 rows), and page 3;
  - each list filter: state, queue, SLA overdue, SLA at risk, escalated; a search by id;
  - one item's page (fields, audit trail, action buttons) and one queue's page (its figures,
    from the statistics counters: the deltas the seeding left are rolled up first, as beat does);

against the floor: the change list's own main query (captured from a request) run bare
through the cursor, p50/p99. Ratios: each page / the floor, and the unfiltered page at the
largest size / at the smallest (flatness). Every request's SQL is checked: no COUNT(*) that is
not over a LIMITed subquery, no DISTINCT, and the statement count is the same at every size.
For comparison, what the list used to run: `SELECT COUNT(*)` of the table and the
`SELECT DISTINCT` of the date drill-down and of the escalation-level filter (once each).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from claim_next import analyze, bench_main, explain, pct, print_table, seed_items  # noqa: E402 - the sibling's helpers

CHANGELIST = "/admin/workitems/workitem/"
BATCH = 1_000_000
QUEUES = 20


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--db", default="workstream_bench_admin", help="database to create (dropped first if it exists)")
    p.add_argument("--keep", action="store_true", help="keep the database afterwards")
    p.add_argument(
        "--sizes",
        default=os.environ.get("BENCH_ADMIN_SIZES", "10000,1000000,10000000"),
        help="items in the table at each measurement (cumulative)",
    )
    p.add_argument("--samples", type=int, default=25, help="requests per page and size")
    return p.parse_args()


def varying(offset: int, queue_ids: list[int], user_ids: list[int]) -> dict[str, str]:
    """Column → SQL over the series number g: the mix described in the docstring."""
    h = f"(g::bigint + {offset})"
    pick = f"mod({h} * 7919, 100)"  # 0..99, spread over the ids
    state = (
        f"CASE WHEN {pick} < 80 THEN 'COMPLETED' WHEN {pick} < 85 THEN 'CANCELLED' "
        f"WHEN {pick} < 90 THEN 'OFFERED' WHEN {pick} < 94 THEN 'ASSIGNED' "
        f"WHEN {pick} < 98 THEN 'IN_PROGRESS' ELSE 'SUSPENDED' END"
    )
    is_open = f"({pick} >= 85)"
    held = f"({pick} >= 90)"
    has_due = f"(mod({h}, 3) <> 0)"
    slot = f"mod({h} * 31, 100)"  # where an open item's deadline stands: < 5 overdue, < 8 at risk
    queues = "ARRAY[" + ",".join(map(str, queue_ids)) + "]"
    users = "ARRAY[" + ",".join(map(str, user_ids)) + "]"
    return {
        "queue_id": f"({queues})[1 + mod({h}, {len(queue_ids)})]",
        "run_id": f"'r' || {h}",
        "state": state,
        "resume_state": f"CASE WHEN {pick} >= 98 THEN 'IN_PROGRESS' ELSE '' END",
        "assignee_id": f"CASE WHEN {held} THEN ({users})[1 + mod({h}, {len(user_ids)})] END",
        "created_at": f"now() - interval '400 days' + {h} * interval '1 second'",
        "offered_at": f"now() - interval '400 days' + {h} * interval '1 second'",
        "due_at": (
            f"CASE WHEN NOT {has_due} THEN NULL "
            f"WHEN {is_open} AND {slot} < 5 THEN now() - interval '1 hour' "
            f"WHEN {is_open} AND {slot} < 8 THEN now() + interval '30 minutes' "
            f"ELSE now() + interval '3 days' END"
        ),
        "sla_state": (
            f"CASE WHEN NOT {has_due} THEN 'none' WHEN NOT {is_open} THEN 'met' "
            f"WHEN {slot} < 5 THEN 'breached' WHEN {slot} < 8 THEN 'at_risk' ELSE 'on_track' END"
        ),
        "escalation_level": f"CASE WHEN mod({h}, 997) = 0 THEN 2 WHEN mod({h}, 97) = 0 THEN 1 ELSE 0 END",
        "assigned_at": f"CASE WHEN {held} THEN now() END",
        "completed_at": f"CASE WHEN {pick} < 80 THEN now() - interval '1 day' END",
        "closed_at": f"CASE WHEN {pick} < 85 THEN now() - interval '1 day' END",
    }


def grow(to: int, seeded: int, queues, user_ids) -> None:
    from django.db import transaction

    while seeded < to:
        n = min(BATCH, to - seeded)
        with transaction.atomic():
            seed_items(queues[0], n, varying_sql=varying(seeded, [q.pk for q in queues], user_ids))
        seeded += n
        print(f"  {seeded:,} items", flush=True)


def main_query(sqls: list[str]) -> str | None:
    """The page's SELECT of its 100 rows (not the capped count, not the planner's estimate)."""
    return next((s for s in sqls if s.startswith("SELECT") and re.search(r"LIMIT 100$", s) and "COUNT(" not in s), None)


def page_queries(client, url: str) -> list[str]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as ctx:
        resp = client.get(url)
    if resp.status_code != 200:
        raise RuntimeError(f"{url}: {resp.status_code}")
    return [q["sql"] for q in ctx.captured_queries]


def whole_table_reads(sqls: list[str]) -> list[str]:
    """Statements that would read a whole table: a DISTINCT, or a COUNT not over a LIMITed subquery."""
    distinct = [s for s in sqls if re.search(r"\bDISTINCT\b", s, re.I)]
    counts = [s for s in sqls if re.search(r"\bCOUNT\(", s, re.I) and "workitems_workitem" in s]
    return distinct + [s for s in counts if not re.search(r"\bLIMIT\b", s)]


def time_page(client, url: str, samples: int) -> list[float]:
    client.get(url)  # warm
    times = []
    for _ in range(samples):
        t0 = time.perf_counter()
        resp = client.get(url)
        times.append((time.perf_counter() - t0) * 1000)
        assert resp.status_code == 200, (url, resp.status_code)
    return times


def time_sql(sql: str, samples: int) -> list[float]:
    from django.db import connection

    times = []
    with connection.cursor() as cur:
        cur.execute(sql)
        cur.fetchall()
        for _ in range(samples):
            t0 = time.perf_counter()
            cur.execute(sql)
            cur.fetchall()
            times.append((time.perf_counter() - t0) * 1000)
    return times


def time_once(sql: str) -> float:
    from django.db import connection

    with connection.cursor() as cur:
        t0 = time.perf_counter()
        cur.execute(sql)
        cur.fetchall()
        return (time.perf_counter() - t0) * 1000


def main() -> int:
    os.environ.setdefault("ALLOWED_HOSTS", "localhost,testserver")
    return bench_main(parse_args(), run)


def run(args, _bench_url: str, t_start: float) -> int:
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.test import Client

    from directory.roles import role_group_name
    from stats.rollup import rollup
    from workitems.models import Queue, WorkItem

    User = get_user_model()
    root = User.objects.create_superuser("root", "root@example.com", "bench")
    workers = Group.objects.get_or_create(name=role_group_name("worker"))[0]
    pw = "bench"  # a throwaway database's
    users = [User.objects.create_user(f"worker{i:02d}", password=pw) for i in range(50)]
    for u in users:
        u.groups.add(workers)
    queues = [Queue.objects.create(name=f"bench-q{i:02d}") for i in range(QUEUES)]
    client = Client()
    client.force_login(root)

    sizes = [int(s) for s in args.sizes.split(",") if s]
    rows: list[tuple[str, str, str, str]] = []
    pages = {
        "list, unfiltered": CHANGELIST,
        "list, page 3": f"{CHANGELIST}?p=3",
        "list, state = OFFERED": f"{CHANGELIST}?state__exact=OFFERED",
        "list, queue = bench-q07": f"{CHANGELIST}?queue__id__exact={queues[7].pk}",
        "list, SLA overdue": f"{CHANGELIST}?sla=overdue",
        "list, SLA at risk": f"{CHANGELIST}?sla=at_risk",
        "list, escalated (any level)": f"{CHANGELIST}?escalated=any",
        "list, search by id": None,  # set per size: an item in the middle
        "item page": None,
        "queue page (its figures)": f"/admin/workitems/queue/{queues[7].pk}/change/",
    }
    p50_at: dict[int, dict[str, float]] = {}
    counts_at: dict[int, dict[str, int]] = {}
    plans: dict[int, str] = {}
    seeded = 0
    for size in sizes:
        print(f"seeding to {size:,} items …", flush=True)
        t0 = time.perf_counter()
        grow(size, seeded, queues, [u.pk for u in users])
        seeded = size
        t1 = time.perf_counter()
        # The statistics trigger left a delta per inserted row; beat folds them every few
        # seconds (stats.rollup), so a queue page would not see millions pending. Analysed
        # first: with stats_delta's statistics from before the seeding (a handful of rows) the
        # roll-up's DELETE … WHERE id IN (SELECT … LIMIT 50000) was planned as a nested-loop
        # semi-join and ran for more than 13 minutes on its first batch at 1M.
        analyze()
        folded = rollup()
        print(f"  {folded:,} statistics deltas rolled up in {time.perf_counter() - t1:.0f}s", flush=True)
        analyze()
        print(f"  seeded and analysed in {time.perf_counter() - t0:.0f}s", flush=True)
        middle = WorkItem.objects.filter(pk__gte=WorkItem.objects.order_by("-pk").values_list("pk", flat=True)[0] // 2)
        mid = middle.order_by("pk").values_list("pk", flat=True)[0]
        pages["list, search by id"] = f"{CHANGELIST}?q={mid}"
        pages["item page"] = f"{CHANGELIST}{mid}/change/"

        # the floor: the change list's own main query, bare
        sqls = page_queries(client, CHANGELIST)
        main_sql = main_query(sqls)
        floor = time_sql(main_sql, args.samples * 4)
        floor_p50 = pct(floor, 50)
        rows.append(
            (
                f"{size:,} items: floor, the list's main query bare (`SELECT … ORDER BY id DESC LIMIT 100`)",
                f"p50 {floor_p50:.2f} ms / p99 {pct(floor, 99):.2f} ms",
                "",
                "",
            )
        )
        plans[size] = main_sql + "\n\n" + explain(main_sql)
        p50_at[size], counts_at[size] = {}, {}
        for label, url in pages.items():
            print(f"  {size:,}: {label} …", flush=True)
            sqls = page_queries(client, url)
            bad = whole_table_reads(sqls) if label.startswith("list") else []
            counts_at[size][label] = len(sqls)
            times = time_page(client, url, args.samples)
            p50_at[size][label] = pct(times, 50)
            rows.append(
                (
                    f"{size:,} items: {label}",
                    f"p50 {pct(times, 50):.1f} ms / p99 {pct(times, 99):.1f} ms; {len(sqls)} queries"
                    + (f"; p50 {pct(times, 50) / floor_p50:.0f}× the floor" if label.startswith("list") else ""),
                    "no whole-table read" if label.startswith("list") else "",
                    ("MISSED: " + bad[0][:120]) if bad else ("met" if label.startswith("list") else ""),
                )
            )
        table = WorkItem._meta.db_table
        was = {
            "COUNT(*)": f"SELECT COUNT(*) FROM {table}",
            "DISTINCT year (date drill-down)": (
                f"SELECT DISTINCT date_trunc('year', created_at AT TIME ZONE 'UTC') FROM {table}"
            ),
            "DISTINCT escalation_level (filter)": f"SELECT DISTINCT escalation_level FROM {table} ORDER BY 1",
        }
        rows.append(
            (
                f"{size:,} items: what the list used to run as well (once each)",
                "; ".join(f"{k} {time_once(sql):.0f} ms" for k, sql in was.items()),
                "",
                "",
            )
        )

    first, last = sizes[0], sizes[-1]
    for label in pages:
        growth = p50_at[last][label] / p50_at[first][label]
        # at most one more: past 1,000 rows the paginator asks the planner for its estimate
        same = counts_at[last][label] <= counts_at[first][label] + 1
        rows.append(
            (
                f"{label}: p50 at {last:,} / at {first:,}; "
                f"queries {counts_at[first][label]} → {counts_at[last][label]}",
                f"{growth:.2f}×",
                "flat: ≤ 1.5×, queries +1 at most" if label.startswith("list") else "",
                ("met" if growth <= 1.5 and same else "MISSED") if label.startswith("list") else "",
            )
        )

    print_table(rows, t_start)
    for size, plan in plans.items():
        print(f"\nThe change list's main query at {size:,} items and its EXPLAIN (ANALYZE, BUFFERS):\n")
        print(plan)
    print(f"\nThe filtered lists' main queries at {last:,} items (EXPLAIN ANALYZE, plan shape):")
    for label, url in pages.items():
        if not label.startswith("list,") or label in ("list, unfiltered", "list, page 3"):
            continue
        sqls = page_queries(client, url)
        main_sql = main_query(sqls)
        if main_sql is None:
            continue
        plan = explain(main_sql)
        shape = [line.strip() for line in plan.splitlines() if "Scan" in line or "Execution Time" in line]
        print(f"\n{label}:\n  " + "\n  ".join(shape))
    return 0


if __name__ == "__main__":
    sys.exit(main())
