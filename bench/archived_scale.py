"""Archived vs live at size (issue 15): claim-next and `GET /stats/queues` with --items work items
all live, then again once the old terminal ones (--archived-fraction, default 90%) are in the
archive tables, and the ratio.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres .venv/bin/python bench/archived_scale.py
    .venv/bin/python bench/archived_scale.py --items 200000        # a quick check

Like bench/claim_next.py the script creates its own database (`workstream_bench_arch10m`, or
--db), migrates it and seeds it set-based as bench/stats.py --fast-load does (the work-item
table's secondary indexes dropped and built again afterwards, the statistics triggers off, then
`stats.rollup.rebuild(history=True)`): 20 queues, 200 holders in teams of 10, and
  - --archived-fraction of --items terminal (4/5 completed, 1/5 cancelled) that ended between
    92 days and about two years ago, ids rising with time as a real table's do;
  - the rest created over the last 30 days: 50% offered, 20% assigned, 10% in progress, 10%
    suspended, 10% completed (recently: they stay live); a seventh breached, a seventh at risk.
Audit records: only the --sample oldest items have one each (what `archive_items` moves with
them); the others have none, so the bulk move copies items only.

  (a) all live, after VACUUM ANALYZE: claim-next through the service layer
      (`services.work_item_claim_next`, one caller, --samples real claims on a queue of 1/20 of the
      offered items: each takes a fresh OFFERED row, so the table hardly changes; with its plan),
      and `GET /stats/queues` as a supervisor with a JWT (--samples calls, bench/stats.py's
      time_calls; with the statement's execution time from EXPLAIN ANALYZE).
  Then the archival, in two parts:
      - `manage.py archive_items --older-than <age> --batch 1000`, the real command, with the age
        chosen so that only the --sample oldest items are due: its rate on this database;
      - the rest of the old terminal items as bench/archive.py's floor (b) moves them: one
        `INSERT INTO archive_archivedworkitem … SELECT to_jsonb(w) …` and one `DELETE`, in one
        transaction with `session_replication_role = replica`. `archive_items` itself runs at
        about 2,400 items/s on this machine (docs/performance.md, Archival): an hour for 9M, too
        long for a bench; the rows it leaves are the same (the archived row is `to_jsonb` of the
        item either way). The statistics are unaffected either way: the delete trigger counts
        open items only.
      Then VACUUM ANALYZE (the live table keeps its file size: the freed pages are reused, not
      returned, as after a real archival).
  (b) 1 - fraction live + fraction archived: the same two calls; the ratios (b)/(a); and an
      archived item read by id through the API (`GET /api/v1/workitems/{id}`, `archived: true`).

--measure-only measures the two calls once on a database an earlier --keep run left.
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import os
import secrets
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from claim_next import (  # noqa: E402 - the sibling's helpers
    bench_main,
    claim_next_sql,
    explain,
    latency,
    make_users,
    pct,
    print_table,
    seed_items,
    server_url,
    setup_django,
    with_db,
)


def _sibling(name: str):
    """bench/<name>.py as a module (bench/stats.py shares its name with the `stats` app)."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


sb = _sibling("stats")  # time_calls, supervisor_client, vacuum, set_triggers, drop/create_indexes …

CLAIM_QUEUE = "bench-00"
RETENTION_DAYS = 90


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--db", default="workstream_bench_arch10m", help="database to create (dropped first if it exists)")
    p.add_argument("--keep", action="store_true", help="keep the database afterwards")
    p.add_argument("--items", type=int, default=10_000_000, help="work items in all")
    p.add_argument("--archived-fraction", type=float, default=0.9, help="share of the items old and terminal")
    p.add_argument("--samples", type=int, default=200, help="claim-next calls and stats calls per phase")
    p.add_argument("--sample", type=int, default=20_000, help="oldest items moved by archive_items itself")
    p.add_argument("--batch", type=int, default=1000, help="archive_items' --batch")
    p.add_argument("--measure-only", action="store_true", help="measure once on a kept database (no seeding)")
    return p.parse_args()


# --- seeding -------------------------------------------------------------------------------------


def _pick(ids, expr: str) -> str:
    return f"(ARRAY[{','.join(str(i) for i in ids)}])[{expr} + 1]"


def seed_old(queues, holders, n: int) -> None:
    """`n` terminal items that ended between 92 days and ~2 years ago, oldest first (rising ids)."""
    step = 730 * 86400 / max(n, 1)
    created = f"(now() - interval '92 days' - ({n} - g) * interval '{step:.6f} seconds')"
    done = "mod(g, 5) <> 4"  # else cancelled
    team = len(holders) // len(queues)
    varying = {
        "queue_id": _pick([q.pk for q in queues], f"mod(g, {len(queues)})"),
        "state": f"CASE WHEN {done} THEN 'COMPLETED' ELSE 'CANCELLED' END",
        "assignee_id": f"CASE WHEN {done} THEN "
        + _pick([u.pk for u in holders], f"mod(g, {len(queues)}) * {team} + mod(g / {len(queues)}, {team})")
        + " END",
        "created_at": created,
        "offered_at": created,
        "updated_at": f"{created} + interval '1 hour'",
        "assigned_at": f"CASE WHEN {done} THEN {created} + interval '5 minutes' END",
        "started_at": f"CASE WHEN {done} THEN {created} + interval '10 minutes' END",
        "completed_at": f"CASE WHEN {done} THEN {created} + interval '1 hour' END",
        "closed_at": f"{created} + interval '1 hour'",
        "due_at": f"{created} + interval '2 hours'",
        "sla_state": f"CASE WHEN {done} THEN 'met' ELSE 'none' END",
    }
    seed_items(queues[0], n, varying_sql=varying)


def seed_live(queues, holders, n: int) -> None:
    """`n` items created over the last 30 days: open, and a tenth completed recently."""
    step = 30 * 86400 / max(n, 1)
    created = f"(now() - ({n} - g) * interval '{step:.6f} seconds')"
    state = (
        "(ARRAY['OFFERED','OFFERED','OFFERED','OFFERED','OFFERED','ASSIGNED','ASSIGNED','IN_PROGRESS',"
        "'SUSPENDED','COMPLETED'])[mod(g, 10) + 1]"
    )
    held = "mod(g, 10) >= 5"
    done = "mod(g, 10) = 9"
    team = len(holders) // len(queues)
    ended = f"LEAST({created} + interval '1 hour', now())"
    varying = {
        "queue_id": _pick([q.pk for q in queues], f"mod(g, {len(queues)})"),
        "state": state,
        "assignee_id": f"CASE WHEN {held} THEN "
        + _pick([u.pk for u in holders], f"mod(g, {len(queues)}) * {team} + mod(g / {len(queues)}, {team})")
        + " END",
        "created_at": created,
        "offered_at": created,
        "assigned_at": f"CASE WHEN {held} THEN {created} + interval '5 minutes' END",
        "completed_at": f"CASE WHEN {done} THEN {ended} END",
        "closed_at": f"CASE WHEN {done} THEN {ended} END",
        "due_at": f"{created} + interval '2 hours'",
        "sla_state": f"CASE WHEN {done} THEN 'met' WHEN mod(g, 7) = 0 THEN 'breached' "
        "WHEN mod(g, 7) = 1 THEN 'at_risk' ELSE 'on_track' END",
        "breached_at": f"CASE WHEN NOT {done} AND mod(g, 7) = 0 THEN LEAST({created} + interval '2 hours', now()) END",
    }
    seed_items(queues[0], n, varying_sql=varying)


def seed_records(n: int) -> None:
    """One audit record in the stream of each of the `n` oldest items (those archive_items moves)."""
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute(
            "INSERT INTO audit_auditrecord (stream, seq, work_item_id, action, actor_username, channel, from_state, "
            "to_state, data, request_id, correlation_id, created_at, prev_hash, hash) "
            "SELECT 'workitem:' || w.id, 1, w.id, 'complete', 'bench', 'api', 'IN_PROGRESS', w.state, "
            "jsonb_build_object('version', 1), 'req', '', w.closed_at, '', md5(w.id::text) || md5('x') "
            "FROM (SELECT id, state, closed_at FROM workitems_workitem ORDER BY id LIMIT %s) w",
            [n],
        )


def seed(args, queues, holders) -> dict[str, float]:
    from stats import rollup

    n_old = round(args.items * args.archived_fraction)
    took = {}
    t = time.perf_counter()
    sb.set_triggers(False)
    defs = sb.drop_indexes()
    print(f"seeding {n_old:,} old terminal items …", flush=True)
    seed_old(queues, holders, n_old)
    print(f"seeding {args.items - n_old:,} recent items …", flush=True)
    seed_live(queues, holders, args.items - n_old)
    seed_records(min(args.sample, n_old))
    took["insert"] = time.perf_counter() - t
    t = time.perf_counter()
    print(f"  inserted in {took['insert']:.0f}s; building {len(defs)} indexes …", flush=True)
    sb.create_indexes(defs)
    sb.set_triggers(True)
    took["indexes"] = time.perf_counter() - t
    t = time.perf_counter()
    print(f"  indexed in {took['indexes']:.0f}s; stats rebuild (history) …", flush=True)
    rollup.rebuild(history=True)
    took["rebuild"] = time.perf_counter() - t
    return took


# --- measuring -----------------------------------------------------------------------------------


def sizes() -> dict[str, int]:
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute(
            "SELECT (SELECT count(*) FROM workitems_workitem), (SELECT count(*) FROM archive_archivedworkitem), "
            "pg_total_relation_size('workitems_workitem'), pg_total_relation_size('archive_archivedworkitem')"
        )
        live, archived, live_bytes, arch_bytes = cur.fetchone()
    return {"live": live, "archived": archived, "live_bytes": live_bytes, "archived_bytes": arch_bytes}


def measure(label: str, sam, claimer, samples: int) -> dict:
    """The stats call and claim-next, each with its load average and its statement's own time."""
    from stats import rollup
    from workitems.models import Queue

    rollup.rollup()  # no pending deltas: both phases read counters alone
    queue_ids = list(Queue.objects.filter(name__startswith="bench-").values_list("pk", flat=True))
    open_n = sb.check_figures(sb.supervisor_client(sam, "force"))
    print(f"{label}: GET /stats/queues × {samples} …", flush=True)
    calls = sb.time_calls(sam, "jwt", samples)
    out = {"stats": calls, "stats_cpu": list(sb.CPU), "stats_load": os.getloadavg()[0], "open": open_n}
    out["stats_sql"], _ = sb.server_time(queue_ids, 30)
    print(f"{label}: claim-next × {samples} …", flush=True)
    walls, sqls, nq = latency(claimer, CLAIM_QUEUE, samples, budget=600.0)
    out.update(claim=walls, claim_sql=sqls, claim_queries=nq, claim_load=os.getloadavg()[0])
    plan = explain(claim_next_sql(claimer, CLAIM_QUEUE))
    out["plan"] = plan
    out["plan_index"] = "wi_claim_next_idx" in plan
    out["plan_ms"] = next(
        (float(line.split(":")[1].split()[0]) for line in plan.splitlines() if line.startswith("Execution Time")),
        float("nan"),
    )
    rollup.rollup()  # the claims' deltas
    out.update(sizes())
    print(
        f"{label}: {out['live']:,} live, {out['archived']:,} archived; stats p50 {pct(calls, 50):.2f} ms "
        f"(load {out['stats_load']:.1f}); claim-next p50 {pct(walls, 50):.2f} ms (load {out['claim_load']:.1f})",
        flush=True,
    )
    return out


class Stamped(io.StringIO):
    """A command's stdout that notes when each line came (archive_items writes one per batch)."""

    def __init__(self):
        super().__init__()
        self.lines: list[tuple[float, str]] = []

    def write(self, text: str) -> int:
        if text.strip():
            self.lines.append((time.perf_counter(), text.strip()))
        return super().write(text)


def archive_sample(n: int, batch: int) -> tuple[int, float, float, int]:
    """`manage.py archive_items` with the age that makes only the `n` oldest items due: the items
    moved, the seconds to its last batch, the seconds in all (its last query finds no more due
    items: here it reads past every old item not yet due) and the age in minutes."""
    from django.core.management import call_command
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute("SELECT now() - closed_at FROM workitems_workitem ORDER BY id OFFSET %s LIMIT 1", [n])
        age = cur.fetchone()[0]
    minutes = int(age.total_seconds() // 60) + 1  # ended before this is due: the n oldest (to a minute)
    out = Stamped()
    t = time.perf_counter()
    call_command("archive_items", f"--older-than={minutes}m", f"--batch={batch}", stdout=out)  # parsed as on a terminal
    took = time.perf_counter() - t
    at_last, last = next((at, line) for at, line in reversed(out.lines) if line.startswith("batch "))
    moved = int(last.split()[2])
    print(f"  archive_items --older-than {minutes}m --batch {batch}: {out.lines[-1][1]} ({took:.1f}s)", flush=True)
    return moved, at_last - t, took, minutes


def bare_move() -> tuple[int, float]:
    """The rest of the old terminal items into the archive table, set-based (bench/archive.py's floor)."""
    from django.db import connection, transaction

    from archive.services import ENDED_SQL, TERMINAL_SQL

    due = f"w.state IN {TERMINAL_SQL} AND {ENDED_SQL} < now() - interval '{RETENTION_DAYS} days'"
    t = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cur:
        cur.execute("SET LOCAL session_replication_role = replica")
        cur.execute("SET LOCAL work_mem = '256MB'")
        cur.execute(
            "INSERT INTO archive_archivedworkitem (id, queue_id, state, assignee_id, closed_at, archived_at, row, "
            "candidate_user_ids, candidate_group_ids, excluded_user_ids) "
            f"SELECT w.id, w.queue_id, w.state, w.assignee_id, {ENDED_SQL}, now(), to_jsonb(w), '[]', '[]', '[]' "
            f"FROM workitems_workitem w WHERE {due}"
        )
        moved = cur.rowcount
        cur.execute(f"DELETE FROM workitems_workitem w WHERE {due}")
        assert cur.rowcount == moved, (cur.rowcount, moved)
    return moved, time.perf_counter() - t


def read_archived(sam, n: int = 20) -> tuple[list[float], int]:
    """`GET /api/v1/workitems/{id}` of archived items (the API falls back to the archive)."""
    import random

    from django.db.models import Max, Min

    from archive.models import ArchivedWorkItem

    client = sb.supervisor_client(sam, "jwt")
    span = ArchivedWorkItem.objects.aggregate(lo=Min("pk"), hi=Max("pk"))
    picks = random.Random(15).sample(range(span["lo"], span["hi"] + 1), min(50 * n, span["hi"] - span["lo"] + 1))
    ids = list(ArchivedWorkItem.objects.filter(pk__in=picks).values_list("pk", flat=True)[:n])
    times = []
    for item_id in ids:
        t = time.perf_counter()
        resp = client.get(f"/api/v1/workitems/{item_id}")
        times.append((time.perf_counter() - t) * 1000)
        assert resp.status_code == 200, resp.content[:300]
        body = resp.json()
        assert body["archived"] is True and body["id"] == item_id, body
    return times, ids[0]


# --- report --------------------------------------------------------------------------------------


def _ms(values: list[float]) -> str:
    return f"{pct(values, 50):.2f} / {pct(values, 99):.2f} ms"


def report(a: dict, b: dict | None, notes: list[tuple[str, str]], t_start: float, first: str = "(a)") -> None:
    rows = []
    for tag, m in ((first, a), ("(b)", b)):
        if m is None:
            continue
        who = f"{m['live']:,} live, {m['archived']:,} archived"
        rows.append(
            (
                f"{tag} claim-next p50 / p99, {who}",
                f"{_ms(m['claim'])} (n={len(m['claim'])}; SQL p50 {pct(m['claim_sql'], 50):.2f} ms in "
                f"{m['claim_queries']} queries; its SELECT executes in {m['plan_ms']:.2f} ms, "
                f"{'wi_claim_next_idx' if m['plan_index'] else 'NOT by wi_claim_next_idx'}); "
                f"load average {m['claim_load']:.1f}",
                "",
                "",
            )
        )
        rows.append(
            (
                f"{tag} GET /stats/queues p50 / p99, {who} ({m['open']:,} open)",
                f"{_ms(m['stats'])} (n={len(m['stats'])}; Python CPU p50 {pct(m['stats_cpu'], 50):.2f} ms; the "
                f"statement executes in {m['stats_sql']:.2f} ms); load average {m['stats_load']:.1f}",
                "",
                "",
            )
        )
        rows.append(
            (
                f"{tag} table sizes",
                f"workitems_workitem {m['live_bytes'] / 2**30:.2f} GiB, archive_archivedworkitem "
                f"{m['archived_bytes'] / 2**30:.2f} GiB (with indexes)",
                "",
                "",
            )
        )
    if b is not None:
        for what, key in (("claim-next", "claim"), ("GET /stats/queues", "stats")):
            rows.append(
                (
                    f"(b) / (a) {what}",
                    f"p50 {pct(b[key], 50) / pct(a[key], 50):.2f}×, p99 {pct(b[key], 99) / pct(a[key], 99):.2f}×",
                    "",
                    "",
                )
            )
        rows.append(("(b) / (a) claim-next's SELECT executed", f"{b['plan_ms'] / a['plan_ms']:.2f}×", "", ""))
        rows.append(("(b) / (a) the stats statement executed", f"{b['stats_sql'] / a['stats_sql']:.2f}×", "", ""))
    rows.extend((k, v, "", "") for k, v in notes)
    print_table(rows, t_start)
    if b is not None:
        print("\n| call | all live (a) | archived (b) | (b) / (a) |\n|---|---:|---:|---:|")
        for what, key, load in (("claim-next", "claim", "claim_load"), ("GET /stats/queues", "stats", "stats_load")):
            print(
                f"| {what} p50 / p99 | {_ms(a[key])} (load {a[load]:.1f}) | {_ms(b[key])} (load {b[load]:.1f}) | "
                f"{pct(b[key], 50) / pct(a[key], 50):.2f}× / {pct(b[key], 99) / pct(a[key], 99):.2f}× |"
            )
    for tag, m in ((first, a), ("(b)", b)):
        if m is not None:
            print(f"\n{tag} EXPLAIN (ANALYZE, BUFFERS) of claim-next's SELECT … FOR UPDATE SKIP LOCKED:\n")
            print(m["plan"])


# --- main ----------------------------------------------------------------------------------------


def run(args, bench_url: str, t_start: float) -> int:
    from django.contrib.auth.models import Group

    from tests import factories
    from workitems.models import Queue

    group = Group.objects.create(name="bench-team")
    queues = [Queue.objects.create(name=f"bench-{i:02d}", max_open=100_000_000) for i in range(sb.QUEUES)]
    for q in queues:
        q.candidate_groups.set([group])
    holders = make_users("bh", sb.HOLDERS, groups=[group])
    claimer = make_users("claimer", 1, groups=[group])[0]
    sam = factories.user("bench-sam", roles=["supervisor"])
    notes: list[tuple[str, str]] = []

    took = seed(args, queues, holders)
    t = time.perf_counter()
    sb.vacuum(bench_url)
    took["vacuum"] = time.perf_counter() - t
    notes.append(
        (
            f"seeding {args.items:,} items (set-based, indexes built after, triggers off)",
            f"insert {took['insert']:.0f}s, indexes {took['indexes']:.0f}s, stats rebuild "
            f"{took['rebuild']:.0f}s, VACUUM ANALYZE {took['vacuum']:.0f}s",
        )
    )
    a = measure("(a)", sam, claimer, args.samples)

    print("archiving …", flush=True)
    n_old = round(args.items * args.archived_fraction)
    moved, batches_s, cmd_s, minutes = archive_sample(min(args.sample, n_old), args.batch)
    rate = moved / batches_s
    notes.append(
        (
            f"`archive_items --older-than {minutes}m --batch {args.batch}`: the {moved:,} oldest, 1 audit record each",
            f"{batches_s:.1f}s to the last batch, {rate:,.0f} items/s (all {n_old:,} at that rate: "
            f"{n_old / rate / 60:,.1f} min); {cmd_s:.1f}s with its final query for more (it reads past the "
            "old items not yet due)",
        )
    )
    bulk, bulk_s = bare_move()
    print(f"  bulk move of {bulk:,} items: {bulk_s:.0f}s", flush=True)
    t = time.perf_counter()
    sb.vacuum(bench_url)
    vac_s = time.perf_counter() - t
    notes.append(
        (
            f"bulk move of the other {bulk:,} (INSERT … SELECT to_jsonb + DELETE, one transaction, no triggers)",
            f"{bulk_s:.0f}s; {bulk / bulk_s:,.0f} items/s; VACUUM ANALYZE after it {vac_s:.0f}s",
        )
    )
    b = measure("(b)", sam, claimer, args.samples)
    reads, one = read_archived(sam)
    notes.append(
        (
            f"an archived item by id, GET /api/v1/workitems/{{id}} (e.g. {one}; archived: true)",
            f"p50 {pct(reads, 50):.2f} ms / max {max(reads):.2f} ms (n={len(reads)})",
        )
    )
    report(a, b, notes, t_start)
    return 0


def measure_again(args) -> int:
    os.environ.setdefault("SECRET_KEY", secrets.token_urlsafe(50))
    setup_django(with_db(server_url(), args.db), migrate=False)
    from django.contrib.auth import get_user_model

    t_start = time.perf_counter()
    users = get_user_model().objects
    m = measure("measure-only", users.get(username="bench-sam"), users.get(username="claimer00000"), args.samples)
    report(m, None, [], t_start, first="(again)")
    return 0


def main() -> int:
    # Calls back to back would meet the per-user rate limit (100/s by default): lift it here.
    cfg = Path(tempfile.mkdtemp()) / "workstream.yaml"
    cfg.write_text("rateLimits: {default: 1000000/s}\n")
    os.environ.setdefault("WORKSTREAM_CONFIG", str(cfg))
    args = parse_args()
    if not 0 < args.archived_fraction < 1:
        sys.exit("--archived-fraction must be between 0 and 1")
    if args.measure_only:
        return measure_again(args)
    return bench_main(args, run)


if __name__ == "__main__":
    sys.exit(main())
