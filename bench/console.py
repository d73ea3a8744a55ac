"""Console benchmark: the supervisor dashboard (`/console/`) and its live fragments
(`/console/live/tiles`, `/charts`, `/breaches`, each polled every 2–3 s by every open
dashboard) as the open items grow, against a GROUP BY recount of the tiles' real-time figures
over the same items in the same run.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres .venv/bin/python bench/console.py
    .venv/bin/python bench/console.py --sizes 10000,1000000 --requests 50

Like bench/claim_next.py the script creates its own database (`workstream_bench_console`, or
--db), migrates it, seeds it with set-based `INSERT … SELECT generate_series` (the items grow in
place from one size to the next: 10 queues, 50 holders in one team, 80% offered, 20% assigned,
a tenth of all at risk and a tenth breached, created over the last 30 days), folds the
statistics trigger's deltas into the counters (stats.rollup.rebuild), VACUUM ANALYZEs, and times
each page as a supervisor through Django's test client (in-process: no HTTP server, no network),
p50 and p99 of --requests calls, and the CPU time of each. Back to back, the calls after the
first within a second meet the figures another dashboard's poll shared (console.figures); the
dashboard is also timed with nothing shared (`FIGURES_TTL = 0`), as one dashboard alone polling
every 2 s costs. The baseline is the recount the counters replace: `SELECT
queue_id, state, sla_state, count(*) … GROUP BY` over the open items. Targets (issue 12):
the dashboard page p50 ≤ 50 ms, and flat: p50 at the largest size / p50 at the smallest ≤ 1.5.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))

from claim_next import bench_main, make_users, pct, print_table, seed_items  # noqa: E402 - the sibling's helpers

PAGES = ("/console/", "/console/live/tiles", "/console/live/charts", "/console/live/breaches")
QUEUES = 10
HOLDERS = 50


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="10000,100000", help="open items, comma-separated, growing")
    p.add_argument("--requests", type=int, default=100, help="calls per page and size")
    p.add_argument("--db", default="workstream_bench_console")
    p.add_argument("--keep", action="store_true", help="keep the bench database")
    p.add_argument(
        "--profile",
        action="store_true",
        help="at the last size, print each page's statements and the top of a cProfile of the dashboard",
    )
    return p.parse_args()


def profile_pages(client, n: int) -> None:
    """Where a page's time goes: its statements (count and time) and a cProfile of the dashboard."""
    import cProfile
    import pstats

    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    for path in PAGES:
        with CaptureQueriesContext(connection) as ctx:
            client.get(path)
        sql_ms = sum(float(q["time"]) for q in ctx.captured_queries) * 1000
        print(f"  {path}: {len(ctx.captured_queries)} statements, {sql_ms:.1f} ms in the database")
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(n):
        client.get("/console/")
    prof.disable()
    pstats.Stats(prof).sort_stats("cumulative").print_stats(40)


def seed_people():
    from django.contrib.auth.models import Group

    from tests import factories

    team = Group.objects.get_or_create(name="bench-team")[0]
    holders = make_users("bw", HOLDERS, groups=[team])
    supervisor = factories.user("bench-supervisor", roles=["supervisor"])
    queues = [factories.queue(f"bench-q{i}", groups=[team], max_open=10**8) for i in range(QUEUES)]
    return queues, holders, supervisor


def seed(queues, holders, n: int) -> None:
    """`n` more open items spread over the queues: 80% offered, 20% assigned to the holders;
    every tenth at risk and every tenth (other) breached, their due dates to match."""
    first = holders[0].pk
    sla = {
        "sla_state": "CASE mod(g, 10) WHEN 0 THEN 'breached' WHEN 1 THEN 'at_risk' ELSE 'on_track' END",
        "due_at": "CASE mod(g, 10) WHEN 0 THEN now() - mod(g, 600) * interval '1 minute' "
        "WHEN 1 THEN now() + mod(g, 30) * interval '1 minute' ELSE now() + interval '3 days' END",
        "created_at": "now() - mod(g, 43200) * interval '1 minute'",
        "escalation_level": "0",
    }
    per_queue = n // len(queues)
    for queue in queues:
        seed_items(queue, per_queue * 8 // 10, varying_sql=sla)
        seed_items(
            queue,
            per_queue - per_queue * 8 // 10,
            state="ASSIGNED",
            assignee_sql=f"{first} + mod(g, {len(holders)})",
            varying_sql=sla,
        )


def settle(bench_url: str) -> None:
    import psycopg

    from stats import rollup

    rollup.rebuild(history=True)
    with psycopg.connect(bench_url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")


CPU: dict[str, list[float]] = {}  # this process's CPU time per call of each page's last timing (ms)


def time_page(client, path: str, n: int) -> list[float]:
    """Wall time per call (ms); the CPU time of each call to CPU[path] (on a loaded machine the
    wall time waits for a core, the CPU time much less)."""
    times, cpu = [], CPU.setdefault(path, [])
    cpu.clear()
    for _ in range(n):
        c0, t0 = time.process_time(), time.perf_counter()
        response = client.get(path)
        times.append((time.perf_counter() - t0) * 1000)
        cpu.append((time.process_time() - c0) * 1000)
        assert response.status_code == 200, (path, response.status_code)
    return times


def time_unshared(client, n: int) -> tuple[list[float], list[float]]:
    """The dashboard with nothing shared between calls (console.figures.FIGURES_TTL = 0): what
    one dashboard alone costs, every figure read from the counters. Wall and CPU (ms)."""
    from console import figures

    ttl, figures.FIGURES_TTL = figures.FIGURES_TTL, 0
    try:
        wall = time_page(client, "/console/", n)
        return wall, list(CPU["/console/"])
    finally:
        figures.FIGURES_TTL = ttl


def time_recount(n: int) -> list[float]:
    from django.db import connection

    sql = (
        "SELECT queue_id, state, sla_state, count(*) FROM workitems_workitem "
        "WHERE state IN ('CREATED', 'OFFERED', 'ASSIGNED', 'IN_PROGRESS', 'SUSPENDED') GROUP BY 1, 2, 3"
    )
    times = []
    with connection.cursor() as cur:
        for _ in range(n):
            t0 = time.perf_counter()
            cur.execute(sql)
            cur.fetchall()
            times.append((time.perf_counter() - t0) * 1000)
    return times


def run(args, bench_url: str, t_start: float) -> int:
    from django.db.models import Count
    from django.test import Client

    from workitems.models import OPEN_STATES, WorkItem

    sizes = [int(s) for s in args.sizes.split(",")]
    queues, holders, supervisor = seed_people()
    client = Client()
    client.force_login(supervisor, backend="django.contrib.auth.backends.ModelBackend")
    results: dict[int, dict[str, list[float]]] = {}
    cpus: dict[int, dict[str, list[float]]] = {}
    seeded = 0
    for size in sizes:
        print(f"seeding to {size:,} open items …", flush=True)
        seed(queues, holders, size - seeded)
        seeded = size
        settle(bench_url)
        open_now = WorkItem.objects.filter(state__in=OPEN_STATES).aggregate(n=Count("id"))["n"]
        print(f"  {open_now:,} open; timing …", flush=True)
        for path in PAGES:
            time_page(client, path, 3)  # warm
        results[size] = {path: time_page(client, path, args.requests) for path in PAGES}
        cpus[size] = {path: list(CPU[path]) for path in PAGES}
        results[size]["unshared"], cpus[size]["unshared"] = time_unshared(client, args.requests)
        results[size]["recount"] = time_recount(max(5, args.requests // 10))
    if args.profile:
        profile_pages(client, max(5, args.requests // 5))
    small, large = sizes[0], sizes[-1]
    rows = []
    for size in sizes:
        base = pct(results[size]["recount"], 50)
        rows.append((f"GROUP BY recount of the open items, {size:,} (baseline)", f"p50 {base:.1f} ms", "", ""))
        for path in (*PAGES, "unshared"):
            p50, p99 = pct(results[size][path], 50), pct(results[size][path], 99)
            target = "≤ 50 ms" if path in ("/console/", "unshared") else ""
            verdict = ("met" if p50 <= 50 else "missed") if target else ""
            name = "`/console/`, figures not shared (one dashboard alone)" if path == "unshared" else f"`{path}`"
            rows.append(
                (
                    f"{name} at {size:,} open",
                    f"p50 {p50:.1f} ms, p99 {p99:.1f} ms, CPU p50 {pct(cpus[size][path], 50):.1f} ms "
                    f"({p50 / base:.2f}× the recount)",
                    target,
                    verdict,
                )
            )
        rows.append((f"load average after {size:,}", f"{os.getloadavg()[0]:.1f}", "", ""))
    for path in PAGES:
        flat = pct(results[large][path], 50) / pct(results[small][path], 50)
        verdict = "met" if flat <= 1.5 else "missed"
        rows.append((f"`{path}` p50 at {large:,} / at {small:,}", f"{flat:.2f}×", "≤ 1.5×", verdict))
    print_table(rows, t_start)
    return 0


def main() -> int:
    return bench_main(parse_args(), run)


if __name__ == "__main__":
    sys.exit(main())
