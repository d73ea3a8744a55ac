"""SLA scan benchmark: the scan over many open items of which some are due, against a bare
set-based UPDATE doing the level bump alone, and the scan when nothing is due (with its plan).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres .venv/bin/python bench/sla_scan.py
    BENCH_SLA_OPEN=100000 BENCH_SLA_DUE=1000 .venv/bin/python bench/sla_scan.py   # smaller

The issue's size is 1,000,000 open items of which 10,000 are due (the defaults; --open and
--due, or BENCH_SLA_OPEN and BENCH_SLA_DUE, run it smaller). Like bench/claim_next.py the
script creates its own database (`workstream_bench_sla`, or --db), migrates it, seeds it with
set-based `INSERT … SELECT generate_series` (never the ORM row by row), measures, prints a
table and the plan, and drops the database (--keep keeps it).

  (a) one scan (services.sla_scan, the configured batch size) over the due items: each is at
      risk, breached and past both levels of the default policy, so the scan makes four
      audited, evented changes per item (sla_at_risk, sla_breach, two escalate levels).
      Time per scan and items escalated per second.
  (b) the bare floor in the same run: one `UPDATE … SET sla_level = sla_level + 1,
      escalation_level = escalation_level + 1 WHERE due_at < now()` over the same rows (no
      audit, no events, no policy), timed and rolled back before (a). The ratio (a)/(b).
  (c) the scan when nothing is due, at the full size: median of --idle-runs scans, and the
      EXPLAIN (ANALYZE, BUFFERS) of its query, which must use the partial index
      wi_sla_next_idx. Target ≤ 50 ms.
  (d) the first scan after features.escalation was switched back on (the queue marked as a
      scan with it off marks it): it revisits the queue's at-risk and breached items once
      (the on-track ones too only for a policy with a level before the at-risk share).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from claim_next import analyze, bench_main, explain, pct, print_table, seed_items  # noqa: E402 - the sibling's helpers

IDLE_TARGET_MS = 50.0


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--db", default="workstream_bench_sla", help="database to create (dropped first if it exists)")
    p.add_argument("--keep", action="store_true", help="keep the database afterwards")
    p.add_argument("--open", type=int, default=int(os.environ.get("BENCH_SLA_OPEN", 1_000_000)), help="open items")
    p.add_argument("--due", type=int, default=int(os.environ.get("BENCH_SLA_DUE", 10_000)), help="of them due")
    p.add_argument("--idle-runs", type=int, default=30, help="scans timed when nothing is due")
    args = p.parse_args()
    if not 0 < args.due <= args.open:
        p.error("need 0 < --due <= --open")
    return args


# Not due: the clock started up to an hour ago, 4 h allowed, the next look (at risk, 0.75) ahead.
NOT_DUE = {
    "sla_state": "'on_track'",
    "sla_started_at": "now() - mod(g, 3600) * interval '1 second'",
    "created_at": "now() - mod(g, 3600) * interval '1 second'",
    "due_at": "now() - mod(g, 3600) * interval '1 second' + interval '4 hours'",
    "sla_next_at": "now() - mod(g, 3600) * interval '1 second' + interval '3 hours'",
}
# Due: started 5 h ago, due an hour ago, never looked at (on track, level 0).
DUE = {
    "sla_state": "'on_track'",
    "sla_started_at": "now() - interval '5 hours'",
    "created_at": "now() - interval '5 hours' - g * interval '1 millisecond'",
    "due_at": "now() - interval '1 hour'",
    "sla_next_at": "now() - interval '2 hours' + g * interval '1 millisecond'",
}


def bare_update() -> tuple[float, int]:
    """The floor: the level bump alone, set-based, rolled back (so the scan sees the same rows)."""
    from django.db import connection, transaction

    from workitems.models import OPEN_STATES, WorkItem

    states = ", ".join(f"'{s}'" for s in OPEN_STATES)
    sql = (
        f"UPDATE {WorkItem._meta.db_table} SET sla_level = sla_level + 1, escalation_level = escalation_level + 1 "
        f"WHERE due_at < now() AND state IN ({states})"
    )
    with transaction.atomic(), connection.cursor() as cur:
        t0 = time.perf_counter()
        cur.execute(sql)
        elapsed = time.perf_counter() - t0
        rows = cur.rowcount
        transaction.set_rollback(True)
    return elapsed, rows


def scan_query_plan(batch: int) -> str:
    """EXPLAIN (ANALYZE, BUFFERS) of the query the scan issues to find due items."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from workitems import services

    with CaptureQueriesContext(connection) as ctx:
        services.sla_scan(batch=batch)
    picks = [q["sql"] for q in ctx.captured_queries if "sla_next_at" in q["sql"] and "ORDER BY" in q["sql"]]
    if not picks:
        raise RuntimeError("the scan issued no query on sla_next_at")
    return picks[0] + "\n\n" + explain(picks[0])


def main() -> int:
    return bench_main(parse_args(), run)


def run(args, _bench_url: str, t_start: float) -> int:
    from datetime import timedelta

    from django.utils import timezone

    from config import wsconfig
    from workitems import services
    from workitems.models import Queue, SlaState, WorkItem

    batch = wsconfig.get().sla.batchSize
    queue = Queue.objects.create(name="bench-sla", sla=timedelta(hours=4))  # the default policy
    print(f"seeding {args.open - args.due:,} open items not due and {args.due:,} due …", flush=True)
    t0 = time.perf_counter()
    seed_items(queue, args.open - args.due, varying_sql=NOT_DUE)
    seed_items(queue, args.due, varying_sql=DUE)
    analyze()
    print(f"  seeded in {time.perf_counter() - t0:.0f}s", flush=True)
    rows: list[tuple[str, str, str, str]] = []

    # (b) first, rolled back: the same rows for the scan
    bare_s, bare_rows = bare_update()
    assert bare_rows == args.due, (bare_rows, args.due)

    # (a) the scan
    print(f"(a) scanning {args.due:,} due items, batch {batch} …", flush=True)
    t0 = time.perf_counter()
    changed = services.sla_scan(batch=batch, max_batches=args.due // batch + 2)
    scan_s = time.perf_counter() - t0
    escalated = WorkItem.objects.filter(queue=queue, sla_state=SlaState.BREACHED, sla_level=2).count()
    assert changed == escalated == args.due, (changed, escalated, args.due)
    rows.append(
        (
            f"(a) one scan, {args.open:,} open / {args.due:,} due (4 audited changes each)",
            f"{scan_s:.1f} s; {changed / scan_s:,.0f} items/s ({scan_s / changed * 1000:.2f} ms an item)",
            "",
            "",
        )
    )
    rows.append(
        (
            "(b) bare UPDATE … WHERE due_at < now() (level bump alone)",
            f"{bare_s * 1000:.0f} ms; {bare_rows / bare_s:,.0f} items/s",
            "",
            "",
        )
    )
    rows.append(("(a) / (b)", f"{scan_s / bare_s:,.0f} × the floor's time", "", ""))

    # (c) nothing due
    analyze()
    services.sla_scan(batch=batch)  # warm
    idle = []
    for _ in range(args.idle_runs):
        t0 = time.perf_counter()
        assert services.sla_scan(batch=batch) == 0
        idle.append((time.perf_counter() - t0) * 1000)
    p50 = pct(idle, 50)
    rows.append(
        (
            f"(c) scan with nothing due, {args.open:,} open items ({args.idle_runs} runs)",
            f"p50 {p50:.2f} ms, max {max(idle):.2f} ms",
            f"≤ {IDLE_TARGET_MS:.0f} ms",
            "met" if p50 <= IDLE_TARGET_MS else "MISSED",
        )
    )
    plan = scan_query_plan(batch)
    uses_index = "wi_sla_next_idx" in plan
    rows.append(
        ("(c) the scan's query uses wi_sla_next_idx", str(uses_index), "True", "met" if uses_index else "MISSED")
    )

    # (d) the first scan after features.escalation was switched back on: it walks every open
    # item with a deadline of the queues a scan saw while off (nothing is due here, so it
    # brings nothing forward): the one-off price of the switch, then back to (c).
    revisited = WorkItem.objects.filter(queue=queue, sla_state__in=[SlaState.AT_RISK, SlaState.BREACHED]).count()
    Queue.objects.filter(pk=queue.pk).update(escalation_held_since=timezone.now())
    t0 = time.perf_counter()
    assert services.sla_scan(batch=batch) == 0
    revisit_s = time.perf_counter() - t0
    rows.append(
        (
            f"(d) first scan after escalation is on again: {revisited:,} at risk or breached of {args.open:,} open",
            f"{revisit_s * 1000:.0f} ms, once",
            "",
            "",
        )
    )

    print_table(rows, t_start)
    print(f"\nThe scan's query with nothing due, {args.open:,} open items, and its EXPLAIN (ANALYZE, BUFFERS):\n")
    print(plan)
    return 0


if __name__ == "__main__":
    sys.exit(main())
