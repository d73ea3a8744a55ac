"""Archival benchmark: `archive_items` over terminal items with their audit records, against a
bare `INSERT … SELECT` + `DELETE` of the same rows in the same run.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres .venv/bin/python bench/archive.py
    .venv/bin/python bench/archive.py --items 20000        # smaller

Like bench/claim_next.py the script creates its own database (`workstream_bench_archive`, or
--db), migrates it, seeds it set-based (`INSERT … SELECT generate_series`): --items completed
items that ended 200 days ago, each with a candidate group and --records audit records in its
stream (`workitem:<id>`), plus as many open items that stay. Then:

  (b) the floor, first and rolled back (so (a) moves the same rows): one `INSERT INTO
      archive_archivedworkitem … SELECT to_jsonb(w) …`, one `INSERT INTO
      archive_archivedauditrecord … SELECT`, and `DELETE`s of the records, the list rows and the
      items, all in one transaction with `session_replication_role = replica` (no triggers: no
      audit guard, no statistics trigger, no foreign-key checks). The bare cost of copying and
      deleting the rows.
  (a) `archive_items(older_than=90 days, batch=--batch)`: batches of one transaction each,
      `FOR UPDATE SKIP LOCKED`, the lists as JSON, the audit guard checking each deleted record
      against its archived copy, the statistics trigger on each deleted item.
  Then `audit_verify` over the archived streams is not timed (the seeded hashes are not real);
  the counts are checked.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from claim_next import analyze, bench_main, print_table, seed_items  # noqa: E402 - the sibling's helpers


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--db", default="workstream_bench_archive", help="database to create (dropped first if it exists)")
    p.add_argument("--keep", action="store_true", help="keep the database afterwards")
    p.add_argument("--items", type=int, default=100_000, help="terminal items to archive")
    p.add_argument("--records", type=int, default=4, help="audit records per item")
    p.add_argument("--batch", type=int, default=1000, help="archive_items' batch size")
    return p.parse_args()


ENDED = {
    "closed_at": "now() - interval '200 days' - g * interval '1 millisecond'",
    "completed_at": "now() - interval '200 days' - g * interval '1 millisecond'",
    "created_at": "now() - interval '201 days' - g * interval '1 millisecond'",
    "assigned_at": "now() - interval '201 days'",
}


def seed_records(per_item: int) -> None:
    """`per_item` audit records in each terminal item's stream, and the item's candidate group."""
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute(
            "INSERT INTO audit_auditrecord (stream, seq, work_item_id, action, actor_username, channel, from_state, "
            "to_state, data, request_id, correlation_id, created_at, prev_hash, hash) "
            "SELECT 'workitem:' || w.id, s, w.id, 'step', 'bench', 'api', '', '', "
            "jsonb_build_object('version', s, 'note', 'step ' || s), 'req', '', w.created_at, "
            "CASE WHEN s = 1 THEN '' ELSE md5(w.id || '-' || (s - 1)) || md5('x') END, "
            "md5(w.id || '-' || s) || md5('x') "
            "FROM workitems_workitem w, generate_series(1, %s) s WHERE w.state = 'COMPLETED'",
            [per_item],
        )
        cur.execute(
            "INSERT INTO workitems_workitem_candidate_groups (workitem_id, group_id) "
            "SELECT w.id, (SELECT min(id) FROM auth_group) FROM workitems_workitem w WHERE w.state = 'COMPLETED'"
        )


def bare_move() -> tuple[float, int, int]:
    """The floor: the same copy and delete as set-based statements, no triggers, rolled back."""
    from django.db import connection, transaction

    from archive.services import AUDIT_COLUMNS

    done = "SELECT id FROM workitems_workitem WHERE state = 'COMPLETED' AND closed_at < now() - interval '90 days'"
    with transaction.atomic(), connection.cursor() as cur:
        cur.execute("SET LOCAL session_replication_role = replica")
        t0 = time.perf_counter()
        cur.execute(
            "INSERT INTO archive_archivedworkitem (id, queue_id, state, assignee_id, closed_at, archived_at, row, "
            "candidate_user_ids, candidate_group_ids, excluded_user_ids) "
            "SELECT w.id, w.queue_id, w.state, w.assignee_id, w.closed_at, now(), to_jsonb(w), '[]', '[]', '[]' "
            f"FROM workitems_workitem w WHERE w.id IN ({done})"
        )
        items = cur.rowcount
        cur.execute(
            f"INSERT INTO archive_archivedauditrecord ({AUDIT_COLUMNS}) SELECT {AUDIT_COLUMNS} FROM audit_auditrecord "
            f"WHERE work_item_id IN ({done})"
        )
        records = cur.rowcount
        cur.execute(f"DELETE FROM audit_auditrecord WHERE work_item_id IN ({done})")
        cur.execute(f"DELETE FROM workitems_workitem_candidate_groups WHERE workitem_id IN ({done})")
        cur.execute(f"DELETE FROM workitems_workitem WHERE id IN ({done})")
        elapsed = time.perf_counter() - t0
        transaction.set_rollback(True)
    return elapsed, items, records


def main() -> int:
    return bench_main(parse_args(), run)


def run(args, _bench_url: str, t_start: float) -> int:
    from datetime import timedelta

    from django.contrib.auth.models import Group

    from archive.models import ArchivedAuditRecord, ArchivedWorkItem
    from archive.services import archive_items
    from workitems.models import Queue, WorkItem

    Group.objects.create(name="bench-archive")
    queue = Queue.objects.create(name="bench-archive")
    print(f"seeding {args.items:,} completed items with {args.records} audit records each, and open ones …", flush=True)
    t0 = time.perf_counter()
    seed_items(queue, args.items, state="COMPLETED", varying_sql=ENDED)
    seed_records(args.records)
    seed_items(queue, args.items)  # open: they stay
    analyze()
    print(f"  seeded in {time.perf_counter() - t0:.0f}s", flush=True)
    rows: list[tuple[str, str, str, str]] = []

    print("(b) the bare INSERT … SELECT + DELETE, rolled back …", flush=True)
    bare_s, bare_items, bare_records = bare_move()
    assert (bare_items, bare_records) == (args.items, args.items * args.records), (bare_items, bare_records)

    print(f"(a) archive_items, batch {args.batch} …", flush=True)
    t0 = time.perf_counter()
    report = archive_items(older_than=timedelta(days=90), batch=args.batch)
    ours_s = time.perf_counter() - t0
    assert (report.items, report.records) == (args.items, args.items * args.records), report
    assert ArchivedWorkItem.objects.count() == args.items
    assert ArchivedAuditRecord.objects.count() == args.items * args.records
    assert WorkItem.objects.count() == args.items  # the open ones

    rows.append(
        (
            f"(a) archive_items, {args.items:,} items + {report.records:,} audit records, {report.batches} batches",
            f"{ours_s:.1f} s; {args.items / ours_s:,.0f} items/s",
            "",
            "",
        )
    )
    rows.append(
        (
            "(b) bare INSERT … SELECT + DELETE of the same rows, one transaction, no triggers",
            f"{bare_s:.1f} s; {args.items / bare_s:,.0f} items/s",
            "",
            "",
        )
    )
    rows.append(("(a) / (b)", f"{ours_s / bare_s:.2f} × the floor's time", "", ""))
    print_table(rows, t_start)
    return 0


if __name__ == "__main__":
    sys.exit(main())
