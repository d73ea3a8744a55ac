"""Partitioning benchmark (issue 15 item 4): the migration to monthly partitions, partition
maintenance, dropping an old outbox month against deleting its rows, the relay's claim query
before and after, and archival, on a database with 1,000,000 work items.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres .venv/bin/python bench/partition.py
    .venv/bin/python bench/partition.py --items 100000 --month-events 50000     # smaller

The script makes its own database (`workstream_bench_partition`, or --db), migrated to audit
0006 / events 0004 (the tables not yet partitioned, every other app at its newest), seeds it
set-based: --items work items (--archive of them completed 200 days ago, the rest open), one
audit record and one published outbox event per item (created over the last 60 days), and
--backlog unpublished events (one per item: the relay's work list). Then:

  1. the relay's claim query (events/relay.py `_BATCH_SQL`, LIMIT 500, rolled back) p50 on the
     plain tables;
  2. `manage.py migrate` to the end (audit 0007, events 0005: the tables become partitioned,
     their rows stay in the `_legacy` partitions), timed;
  3. the claim query p50 again, on the partitioned tables, with its plan;
  4. --month-events published events in each of the next two months' partitions; the first
     month's rows deleted as `purge_published` deletes (chunks of 5,000, one transaction each),
     the second month's partition dropped by `partitions.maintain` (as of a time past both
     months' retention): DELETE time / DROP time;
  5. `partitions.maintain` creating three more months of both tables, timed;
  6. `archive_items` over the --archive completed items on the partitioned audit trail.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from claim_next import analyze, bench_main, print_table, seed_items  # noqa: E402 - the sibling's helpers


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--db", default="workstream_bench_partition", help="database to create (dropped first)")
    p.add_argument("--keep", action="store_true", help="keep the database afterwards")
    p.add_argument("--items", type=int, default=1_000_000)
    p.add_argument("--archive", type=int, default=20_000, help="of the items, completed ones to archive")
    p.add_argument("--backlog", type=int, default=5_000, help="unpublished events")
    p.add_argument("--month-events", type=int, default=200_000, help="published events per month partition (4)")
    p.add_argument("--samples", type=int, default=30)
    return p.parse_args()


def migrate_before() -> None:
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connection)
    before = {"audit": "0006_access_log", "events": "0004_outbox_traceparent"}
    executor.migrate([(app, before.get(app, name)) for app, name in executor.loader.graph.leaf_nodes()])


def seed(args) -> None:
    from django.db import connection

    from workitems.models import Queue

    queue = Queue.objects.create(name="bench-partition")
    ended = "now() - interval '200 days' - g * interval '1 millisecond'"
    seed_items(
        queue,
        args.archive,
        state="COMPLETED",
        varying_sql={"closed_at": ended, "completed_at": ended, "created_at": ended},
    )
    spread = "now() - (g %% 5184000) * interval '1 second'"  # over the last 60 days
    seed_items(queue, args.items - args.archive, varying_sql={"created_at": spread})
    with connection.cursor() as cur:
        cur.execute(
            "INSERT INTO audit_auditrecord (stream, seq, work_item_id, action, actor_username, channel, from_state, "
            "to_state, data, request_id, correlation_id, created_at, prev_hash, hash) "
            "SELECT 'workitem:' || w.id, 1, w.id, 'workitem.created', 'bench', 'api', '', w.state, '{}', 'req', '', "
            "w.created_at, '', md5(w.id::text) || md5('x') FROM workitems_workitem w"
        )
        cur.execute(
            "INSERT INTO audit_audithead (stream, seq, hash, updated_at) "
            "SELECT stream, seq, hash, created_at FROM audit_auditrecord"
        )
        events = (
            "INSERT INTO events_outboxevent (event_id, event_type, aggregate_type, aggregate_id, sequence, "
            "occurred_at, producer, trace_id, traceparent, correlation_id, payload, published_at, attempts, "
            "last_error) SELECT gen_random_uuid(), 'workitem.created.v1', 'workitem', w.id::text, {seq}, {at}, "
            "'bench', '', '', '', jsonb_build_object('id', w.id), {published}, 0, '' FROM workitems_workitem w "
        )
        cur.execute(events.format(seq=1, at="w.created_at", published="w.created_at"))
        cur.execute(
            events.format(seq=2, at="now()", published="NULL") + "WHERE w.state <> 'COMPLETED' ORDER BY w.id LIMIT %s",
            [args.backlog],
        )


def claim_p50(samples: int) -> float:
    from django.db import connection, transaction

    from events.relay import _BATCH_SQL

    times = []
    for _ in range(samples):
        with transaction.atomic(), connection.cursor() as cur:
            t0 = time.perf_counter()
            cur.execute(_BATCH_SQL, {"now": datetime.now(UTC), "limit": 500})
            assert len(cur.fetchall()) == 500
            times.append((time.perf_counter() - t0) * 1000)
            transaction.set_rollback(True)
    return statistics.median(times)


def claim_plan() -> str:
    from django.db import connection, transaction

    from events.relay import _BATCH_SQL

    with transaction.atomic(), connection.cursor() as cur:
        cur.execute("EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) " + _BATCH_SQL, {"now": datetime.now(UTC), "limit": 500})
        plan = "\n".join(r[0] for r in cur.fetchall())
        transaction.set_rollback(True)
    return plan


def month_start(n: int) -> datetime:
    from config import partitions

    now = datetime.now(UTC)
    return partitions._months_after(now.replace(day=1, hour=0, minute=0, second=0, microsecond=0), n)


def fill_month(n: int, events: int) -> str:
    """`events` published events in the partition of the month `n` months from now; its name."""
    from django.db import connection

    lo = month_start(n)
    with connection.cursor() as cur:
        cur.execute(
            "INSERT INTO events_outboxevent (event_id, event_type, aggregate_type, aggregate_id, sequence, "
            "occurred_at, producer, trace_id, traceparent, correlation_id, payload, published_at, attempts, "
            "last_error) SELECT gen_random_uuid(), 'workitem.completed.v1', 'workitem', g::text, 3, "
            "%s + (g %% 86400) * interval '1 second', 'bench', '', '', '', jsonb_build_object('id', g), "
            "%s + interval '2 days', 0, '' FROM generate_series(1, %s) g",
            [lo, lo, events],
        )
        cur.execute(
            "SELECT tableoid::regclass::text, count(*) FROM events_outboxevent WHERE occurred_at >= %s "
            "AND occurred_at < %s GROUP BY 1",
            [lo, month_start(n + 1)],
        )
        rows = cur.fetchall()
    assert rows == [(f"events_outboxevent_p{lo:%Y%m}", events)], rows
    return rows[0][0]


def delete_as_purge(partition: str) -> tuple[float, int]:
    """The rows of `partition` deleted by relay.purge_published itself (chunks of 5,000, one
    transaction each); the rows were published in the future, hence the negative age."""
    from events.relay import purge_published

    t0 = time.perf_counter()
    total = purge_published(older_than_days=-400, table=partition)
    return time.perf_counter() - t0, total


def main() -> int:
    return bench_main(parse_args(), run)


def run(args, _bench_url: str, t_start: float) -> int:
    from django.core.management import call_command
    from django.db import connection

    from archive.services import archive_items
    from config import partitions

    # bench_main migrated to the end: start again from a database before the partitioning.
    with connection.cursor() as cur:
        cur.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    migrate_before()
    print(f"seeding {args.items:,} items, their audit records and outbox events …", flush=True)
    t0 = time.perf_counter()
    seed(args)
    analyze()
    print(f"  seeded in {time.perf_counter() - t0:.0f}s", flush=True)
    rows: list[tuple[str, str, str, str]] = []

    before = claim_p50(args.samples)
    print(f"1. claim query p50, plain tables: {before:.2f} ms", flush=True)

    t0 = time.perf_counter()
    call_command("migrate", verbosity=0, interactive=False)
    migrate_s = time.perf_counter() - t0
    analyze()
    print(f"2. migrate to partitioned: {migrate_s:.1f} s", flush=True)
    after = claim_p50(args.samples)
    plan = claim_plan()
    print(f"3. claim query p50, partitioned: {after:.2f} ms\n{plan}", flush=True)

    first, second = fill_month(1, args.month_events), fill_month(2, args.month_events)
    analyze()
    delete_s, deleted = delete_as_purge(first)
    assert deleted == args.month_events
    as_of = month_start(3) + timedelta(days=8)
    t0 = time.perf_counter()
    report = partitions.maintain(months_ahead=0, retention_days=7, as_of=as_of)
    drop_s = time.perf_counter() - t0
    dropped = {r[1] for r in report if r[2] == "dropped"}
    assert {first, second} <= dropped, report
    assert ("events_outboxevent", "events_outboxevent_legacy") in {(r[0], r[1]) for r in report if r[2] == "kept"}
    print(f"4. DELETE of {deleted:,} rows {delete_s:.2f} s; maintain dropping {sorted(dropped)} {drop_s:.3f} s")

    t0 = time.perf_counter()
    made = partitions.maintain(months_ahead=partitions.MONTHS_AHEAD + 3, retention_days=7)
    create_s = time.perf_counter() - t0
    created = [r[1] for r in made if r[2] == "created"]
    assert len(created) >= 6 and not [r for r in made if r[2] == "failed"], made
    print(f"5. maintain creating {created}: {create_s:.3f} s", flush=True)

    t0 = time.perf_counter()
    archived = archive_items(older_than=timedelta(days=90), batch=1000)
    archive_s = time.perf_counter() - t0
    assert archived.items == args.archive, archived
    print(f"6. archive_items: {archived.items:,} items, {archived.records:,} records, {archive_s:.1f} s", flush=True)

    load = os.getloadavg()
    rows += [
        (
            "work items / audit records / outbox events",
            f"{args.items:,} / {args.items:,} / {args.items + args.backlog + 2 * args.month_events:,}",
            "",
            "",
        ),
        ("relay claim query p50 (500 of the backlog), plain tables", f"{before:.2f} ms", "", ""),
        (
            "relay claim query p50, partitioned (rows in the legacy partition)",
            f"{after:.2f} ms",
            f"{after / before:.2f} × plain",
            "",
        ),
        ("migrate audit 0007 + events 0005 (both tables, 1M rows each)", f"{migrate_s:.1f} s", "", ""),
        (f"DELETE of one month's {deleted:,} published events (purge_published's chunks)", f"{delete_s:.2f} s", "", ""),
        (
            "maintain: drop that month's partition (+ the emptied one)",
            f"{drop_s:.3f} s",
            f"DELETE / DROP = {delete_s / drop_s:,.1f} ×",
            "",
        ),
        (
            f"maintain: create {len(created)} monthly partitions (both tables, 6 months ahead)",
            f"{create_s:.3f} s",
            "",
            "",
        ),
        (
            f"archive_items of {archived.items:,} items on the partitioned trail",
            f"{archive_s:.1f} s; {archived.items / archive_s:,.0f} items/s",
            "",
            "",
        ),
        ("load average (1, 5, 15 min) at the end", ", ".join(f"{x:.1f}" for x in load), "", ""),
    ]
    print_table(rows, t_start)
    return 0


if __name__ == "__main__":
    sys.exit(main())
