"""Hot-path benchmark (issue 13): the command path against the database floor, and the worker's list.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres .venv/bin/python bench/hot_path.py

Like bench/claim_next.py (whose helpers it uses) it creates its own database
(`workstream_bench_hot`, or --db), migrates it, measures, prints a Markdown table and drops the
database (--keep keeps it).

  (a) one lifecycle at a time on one connection, one thread: create → claim-next → start →
      complete through the services (in-process, every guarantee: audit chain, outbox,
      candidacy, capacity, versions), against the same four steps as minimal SQL through
      psycopg (per step one transaction: the item's INSERT or UPDATE, one audit INSERT, one
      outbox INSERT; claim-next as UPDATE … WHERE id = (SELECT … FOR UPDATE SKIP LOCKED)).
      Ours and the floor alternate, --rounds times (default 3) of --duration seconds each;
      each step's ratio (floor time / our time) is the median over the rounds. Target ≥ 0.5.
  (a16) the same lifecycles at --procs concurrent callers (default 16), each a process of its
      own with its own connection (the GIL makes threads a poor model of a server): ours and
      the floor alternate, --rounds times; lifecycles/s of all processes together, and each
      step's median latency, floor / ours. Both queues hold open items beforehand, so a
      claim-next always finds one nobody else is taking. --parts procs (not in the default).
  (b) a worker's GET /workitems (default order, page of 20) through the view, in-process, at
      --sizes visible items (default 25,000 and 722,000): p50 with today's filter and, in the
      same run, with the filter it replaced (correlated EXISTS, JIT on as PostgreSQL ships),
      and the plan of today's query. Target: p50 at the largest ≤ 1.5 × p50 at the smallest.

and, each a bench of its own run here as a child process with its own databases (its output
shown as it runs, its table's rows added to this one, each under the bench's name):

  http      bench/http_hot.py (targets 3, 5, 6): over gunicorn, ours against a naive DRF app:
            create, list and get; list and get at 10k and 1M items; a web worker's RSS over
            100,000 requests. Needs wrk (`apt-get install -y wrk`). --http-args are passed on.
  viewflow  bench/viewflow_lifecycle.py (target 4): one lifecycle against django-viewflow
            (installed from PyPI into a venv of its own). --viewflow-args.
  relay     bench/relay_memory.py (target 6): the relay's and consumers' RSS over a drain of a
            million events. --relay-args.

--parts all (the default) runs commands, procs, list, http, viewflow and relay: the table of
targets 2–6 in one run (about an hour on a 2-CPU machine). Every row carries the load average
at the time it was measured.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shlex
import statistics
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from claim_next import (  # noqa: E402
    analyze,
    bench_main,
    explain,
    floor_statements,
    pct,
    print_table,
    seed_items,
    setup_django,
)


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--db", default="workstream_bench_hot", help="database to create (dropped first if it exists)")
    p.add_argument("--keep", action="store_true", help="keep the database afterwards")
    p.add_argument("--duration", type=float, default=4.0, help="seconds per side per round in (a)")
    p.add_argument("--rounds", type=int, default=3, help="alternated rounds in (a)")
    p.add_argument("--sizes", default="25000,722000", help="visible items for the list runs (b)")
    p.add_argument("--samples", type=int, default=15, help="list requests per size and filter")
    p.add_argument(
        "--parts",
        default="all",
        help=f"which of {', '.join(PARTS)} to run (comma-separated), or all",
    )
    p.add_argument("--http-args", default="", help="arguments for bench/http_hot.py (part http)")
    p.add_argument("--viewflow-args", default="", help="arguments for bench/viewflow_lifecycle.py (part viewflow)")
    p.add_argument("--relay-args", default="", help="arguments for bench/relay_memory.py (part relay)")
    p.add_argument("--procs", type=int, default=16, help="concurrent processes in (a16)")
    p.add_argument("--profile", action="store_true", help="print a cProfile of our lifecycle and stop")
    args = p.parse_args()
    args.parts = PARTS if args.parts == "all" else tuple(x.strip() for x in args.parts.split(","))
    unknown = set(args.parts) - set(PARTS)
    if unknown:
        p.error(f"unknown parts: {', '.join(sorted(unknown))} (choose from {', '.join(PARTS)})")
    return args


PARTS = ("commands", "procs", "list", "http", "viewflow", "relay")
CHILDREN = {  # part: (bench script, the argument that carries its options)
    "http": ("http_hot.py", "http_args"),
    "viewflow": ("viewflow_lifecycle.py", "viewflow_args"),
    "relay": ("relay_memory.py", "relay_args"),
}
STEPS = ("create", "claim-next", "start", "complete")


def load() -> str:
    return "load " + "/".join(f"{x:.1f}" for x in os.getloadavg())


class DriverClock:
    """Time spent inside psycopg's wait (the server's work, the network and psycopg's own code
    for each statement and commit) while installed: the rest of a call is the caller's Python.
    Installed around a round of (a), for ours and the floor alike."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def __enter__(self):
        from psycopg import connection as pgconnection

        self._cls, self._orig = pgconnection.Connection, pgconnection.Connection.wait
        orig, clock = self._orig, self

        def wait(conn, gen, *args, **kwargs):
            t = time.perf_counter()
            try:
                return orig(conn, gen, *args, **kwargs)
            finally:
                clock.seconds += time.perf_counter() - t

        self._cls.wait = wait
        return self

    def __exit__(self, *exc) -> None:
        self._cls.wait = self._orig


# --- (a) the command path vs the floor ------------------------------------------------------------


def ours_round(svc, worker, queue, duration: float) -> dict[str, list[float]]:
    from workitems import services

    times: dict[str, list[float]] = {s: [] for s in STEPS}
    deadline = time.perf_counter() + duration
    n = 0
    while time.perf_counter() < deadline:
        n += 1
        body = {"workflow_id": "hot", "run_id": f"ours-{uuid.uuid4().hex}", "task_name": "review", "queue": queue.name}
        t0 = time.perf_counter()
        services.work_item_create(actor=svc, data=body)
        t1 = time.perf_counter()
        item = services.work_item_claim_next(actor=worker)
        t2 = time.perf_counter()
        item = services.work_item_start(item_id=item.pk, actor=worker, expected_version=item.version)
        t3 = time.perf_counter()
        services.work_item_complete(item_id=item.pk, actor=worker, result={"ok": True}, expected_version=item.version)
        t4 = time.perf_counter()
        for step, dt in zip(STEPS, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
            times[step].append(dt)
    return times


def _item_insert_sql(queue_id: int, svc_id: int):
    """The INSERT of a new OFFERED item, every column from the model's defaults."""
    from django.db import connection

    from workitems.models import WorkItem

    template = WorkItem(
        workflow_id="hot", task_name="review", queue_id=queue_id, state="OFFERED", created_by_id=svc_id, event_seq=1
    )
    cols, values = [], []
    for f in WorkItem._meta.concrete_fields:
        if f.primary_key:
            continue
        cols.append(connection.ops.quote_name(f.column))
        values.append(f.get_db_prep_save(getattr(template, f.attname), connection))
    sql = f"INSERT INTO {WorkItem._meta.db_table} ({', '.join(cols)}) VALUES ({', '.join(['%s'] * len(cols))})"
    run_id = [c.strip('"') for c in cols].index("run_id")
    return sql + " RETURNING id", values, run_id


def floor_round(db_url: str, svc, worker, queue, duration: float) -> dict[str, list[float]]:
    import psycopg
    from psycopg.types.json import Jsonb

    from workitems.models import WorkItem

    claim_sql, (a_cols, a_defaults, a_sql), (o_cols, o_defaults, o_sql) = floor_statements()
    insert_sql, insert_values, run_id_at = _item_insert_sql(queue.pk, svc.pk)
    wi = WorkItem._meta.db_table
    step_sql = {
        "start": f"UPDATE {wi} SET state = 'IN_PROGRESS', started_at = now(), updated_at = now(), "
        "version = version + 1, event_seq = event_seq + 1 WHERE id = %s AND version = %s RETURNING version, event_seq",
        "complete": f"UPDATE {wi} SET state = 'COMPLETED', result = %s, completed_at = now(), closed_at = now(), "
        "updated_at = now(), version = version + 1, event_seq = event_seq + 1 "
        "WHERE id = %s AND version = %s RETURNING version, event_seq",
    }

    def audit_and_event(conn, item_id, version, seq, action, from_state, to_state, prev):
        data = {"version": version, "actor": worker.username}
        digest = hashlib.sha256(json.dumps([item_id, version, prev, data], sort_keys=True).encode()).hexdigest()
        audit = {
            "stream": f"workitem:{item_id}",
            "seq": version,
            "work_item_id": item_id,
            "action": action,
            "actor_id": worker.pk,
            "actor_username": worker.username,
            "channel": "api",
            "from_state": from_state,
            "to_state": to_state,
            "data": Jsonb(data),
            "request_id": "",
            "correlation_id": "",
            "created_at": datetime.now(UTC),
            "prev_hash": prev,
            "hash": digest,
        }
        conn.execute(a_sql, [audit.get(c, a_defaults[c]) for c in a_cols])
        event = {
            "event_id": uuid.uuid4(),
            "event_type": f"workitem.{action}.v1",
            "aggregate_type": "workitem",
            "aggregate_id": str(item_id),
            "sequence": seq,
            "occurred_at": datetime.now(UTC),
            "producer": "workstream",
            "trace_id": "",
            "correlation_id": "",
            "payload": Jsonb({"work_item": {"id": item_id, "state": to_state}}),
            "attempts": 0,
            "last_error": "",
        }
        conn.execute(o_sql, [event.get(c, o_defaults[c]) for c in o_cols])
        return digest

    times: dict[str, list[float]] = {s: [] for s in STEPS}
    with psycopg.connect(db_url) as conn:
        deadline = time.perf_counter() + duration
        while time.perf_counter() < deadline:
            values = list(insert_values)
            values[run_id_at] = f"floor-{uuid.uuid4().hex}"
            t0 = time.perf_counter()
            with conn.transaction():
                item_id = conn.execute(insert_sql, values).fetchone()[0]
                prev = audit_and_event(conn, item_id, 1, 1, "create", "", "OFFERED", "")
            t1 = time.perf_counter()
            with conn.transaction():
                item_id, version, seq = conn.execute(claim_sql, {"user": worker.pk, "queue": queue.pk}).fetchone()
                prev = audit_and_event(conn, item_id, version, seq, "claim", "OFFERED", "ASSIGNED", prev)
            t2 = time.perf_counter()
            with conn.transaction():
                version, seq = conn.execute(step_sql["start"], [item_id, version]).fetchone()
                prev = audit_and_event(conn, item_id, version, seq, "start", "ASSIGNED", "IN_PROGRESS", prev)
            t3 = time.perf_counter()
            with conn.transaction():
                version, seq = conn.execute(step_sql["complete"], [Jsonb({"ok": True}), item_id, version]).fetchone()
                audit_and_event(conn, item_id, version, seq, "complete", "IN_PROGRESS", "COMPLETED", prev)
            t4 = time.perf_counter()
            for step, dt in zip(STEPS, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
                times[step].append(dt)
    return times


def command_path(args, bench_url: str, svc, team) -> list[tuple[str, str, str, str]]:
    from tests import factories

    ours_worker = factories.user("hot-ours", roles=["worker"], groups=[team[0]])
    floor_worker = factories.user("hot-floor", roles=["worker"], groups=[team[1]])
    ours_q = factories.queue("hot-ours", groups=[team[0]])
    floor_q = factories.queue("hot-floor", groups=[team[1]])
    ours_round(svc, ours_worker, ours_q, 1.0)  # warm-up (imports, plans, the connection)
    if args.profile:
        import cProfile
        import pstats

        prof = cProfile.Profile()
        prof.runcall(ours_round, svc, ours_worker, ours_q, args.duration)
        pstats.Stats(prof).sort_stats("cumulative").print_stats(40)
        return []
    floor_round(bench_url, svc, floor_worker, floor_q, 1.0)
    ratios: dict[str, list[float]] = {s: [] for s in (*STEPS, "lifecycle")}
    rates: dict[str, list[tuple[float, float]]] = {s: [] for s in ratios}
    split: dict[str, list[tuple[float, float]]] = {"ours": [], "floor": []}  # per lifecycle: (driver, rest) s
    loads = []
    for r in range(args.rounds):
        t0 = time.perf_counter()
        with DriverClock() as clock:
            ours = ours_round(svc, ours_worker, ours_q, args.duration)
        n = len(ours["create"])
        split["ours"].append((clock.seconds / n, (time.perf_counter() - t0 - clock.seconds) / n))
        t0 = time.perf_counter()
        with DriverClock() as clock:
            floor = floor_round(bench_url, svc, floor_worker, floor_q, args.duration)
        n = len(floor["create"])
        split["floor"].append((clock.seconds / n, (time.perf_counter() - t0 - clock.seconds) / n))
        ours["lifecycle"] = [sum(t) for t in zip(*(ours[s] for s in STEPS), strict=True)]
        floor["lifecycle"] = [sum(t) for t in zip(*(floor[s] for s in STEPS), strict=True)]
        for s in ratios:
            mo, mf = statistics.median(ours[s]), statistics.median(floor[s])
            ratios[s].append(mf / mo)
            rates[s].append((1 / mo, 1 / mf))
        loads.append(f"{os.getloadavg()[0]:.1f}")
        print(f"  round {r + 1}: " + ", ".join(f"{s} {ratios[s][-1]:.2f}x" for s in ratios) + f"; {load()}", flush=True)
    rows = [
        ratio_row(
            f"(a) {s}: in-process vs psycopg floor, 1 connection",
            statistics.median(ratios[s]),
            args.rounds,
            (statistics.median(o for o, _ in rates[s]), statistics.median(f for _, f in rates[s])),
            loads,
        )
        for s in ratios
    ]
    (od, orest), (fd, frest) = (tuple(statistics.median(x[i] for x in split[side]) for i in (0, 1)) for side in split)
    rows.append(
        (
            "(a) a lifecycle's time: in the driver (psycopg's wait: server, network, psycopg) + the rest (Python)",
            f"ours {od * 1e3:.1f} + {orest * 1e3:.1f} ms; floor {fd * 1e3:.1f} + {frest * 1e3:.1f} ms "
            f"(with no Python of ours at all: {fd + frest:.4f} / {od:.4f} = {(fd + frest) / od:.2f}x)",
            "",
            "",
        )
    )
    return rows


def ratio_row(measure: str, ratio: float, rounds: int, rates: tuple[float, float] | None = None, loads=()):
    """A table row of a ratio against the ≥ 0.5x target (with the two rates, when given, and
    each round's one-minute load average)."""
    shown = f"{rates[0]:,.0f}/s vs {rates[1]:,.0f}/s = " if rates else ""
    at = f"; load {', '.join(loads)}" if loads else ""
    return (
        measure,
        f"{shown}**{ratio:.2f}x** (median of {rounds}{at})",
        "≥ 0.5x",
        "met" if ratio >= 0.5 else "missed",
    )


# --- (a16) the same at concurrent processes -------------------------------------------------------


def _proc_init(bench_url: str) -> None:
    """A process of the pool: Django on the (migrated) bench database, its own connection."""
    setup_django(bench_url, migrate=False)


def _proc_run(task) -> dict[str, list[float]]:
    """One process's share of a round: wait for the common start, then lifecycles for `duration`."""
    from django.contrib.auth import get_user_model

    from workitems.models import Queue

    side, bench_url, svc_id, worker_id, queue_id, duration, start_at = task
    users = get_user_model().objects
    svc, worker, queue = users.get(pk=svc_id), users.get(pk=worker_id), Queue.objects.get(pk=queue_id)
    time.sleep(max(0.0, start_at - time.time()))
    if side == "ours":
        return ours_round(svc, worker, queue, duration)
    return floor_round(bench_url, svc, worker, queue, duration)


def procs_path(args, bench_url: str, svc, team) -> list[tuple[str, str, str, str]]:
    import multiprocessing

    from tests import factories
    from workitems import services

    n = args.procs
    sides = {
        "ours": (factories.queue("hot-procs-ours", groups=[team[0]]), team[0]),
        "floor": (factories.queue("hot-procs-floor", groups=[team[1]]), team[1]),
    }
    workers = {
        side: [factories.user(f"procs-{side}-{i}", roles=["worker"], groups=[g]) for i in range(n)]
        for side, (_, g) in sides.items()
    }
    for queue, _ in sides.values():  # open items beforehand: nobody's claim-next waits for a create
        for i in range(2 * n):
            services.work_item_create(
                actor=svc,
                data={
                    "workflow_id": "hot",
                    "run_id": f"pre-{queue.pk}-{i}",
                    "task_name": "review",
                    "queue": queue.name,
                },
            )

    def tasks(side: str, duration: float):
        start_at = time.time() + 2.0
        return [(side, bench_url, svc.pk, w.pk, sides[side][0].pk, duration, start_at) for w in workers[side]]

    def merged(results) -> dict[str, list[float]]:
        out = {s: [t for r in results for t in r[s]] for s in STEPS}
        out["lifecycle"] = [sum(t) for r in results for t in zip(*(r[s] for s in STEPS), strict=True)]
        return out

    ratios: dict[str, list[float]] = {s: [] for s in (*STEPS, "lifecycle")}
    throughput: list[tuple[float, float]] = []
    loads: list[str] = []
    with multiprocessing.get_context("spawn").Pool(n, initializer=_proc_init, initargs=(bench_url,)) as pool:
        pool.map(_proc_run, tasks("ours", 0.5), chunksize=1)  # warm-up (imports, connections, plans)
        pool.map(_proc_run, tasks("floor", 0.5), chunksize=1)
        for r in range(args.rounds):
            ours = merged(pool.map(_proc_run, tasks("ours", args.duration), chunksize=1))
            floor = merged(pool.map(_proc_run, tasks("floor", args.duration), chunksize=1))
            for s in ratios:
                ratios[s].append(statistics.median(floor[s]) / statistics.median(ours[s]))
            throughput.append((len(ours["lifecycle"]) / args.duration, len(floor["lifecycle"]) / args.duration))
            loads.append(f"{os.getloadavg()[0]:.1f}")
            print(
                f"  round {r + 1} at {n} processes: lifecycles {throughput[-1][0]:.0f}/s vs {throughput[-1][1]:.0f}/s; "
                + ", ".join(f"{s} {ratios[s][-1]:.2f}x" for s in ratios)
                + f"; {load()}",
                flush=True,
            )
    rows = [
        ratio_row(
            f"(a16) lifecycles at {n} processes, each its own connection: throughput",
            statistics.median(o / f for o, f in throughput),
            args.rounds,
            (statistics.median(o for o, _ in throughput), statistics.median(f for _, f in throughput)),
            loads,
        )
    ]
    rows += [
        ratio_row(
            f"(a16) {s} at {n} processes: median latency, floor / ours",
            statistics.median(ratios[s]),
            args.rounds,
            loads=loads,
        )
        for s in ratios
    ]
    return rows


# --- (b) the worker's list ---------------------------------------------------------------------


def old_visibility(actor):
    """The filter GET /workitems used before issue 13: an OR of correlated EXISTS (for comparison)."""
    from django.db.models import Exists, OuterRef, Q

    from workitems import policy
    from workitems.models import WorkItem

    gids = policy.group_ids_of(actor)
    cu = Exists(WorkItem.candidate_users.through.objects.filter(workitem_id=OuterRef("pk"), user_id=actor.pk))
    cg = Exists(WorkItem.candidate_groups.through.objects.filter(workitem_id=OuterRef("pk"), group_id__in=gids))
    return Q(assignee_id=actor.pk) | policy.queue_member_filter(actor) | cu | cg


def list_request(worker, page_size: int = 20):
    from rest_framework.test import APIRequestFactory, force_authenticate

    from workitems.api.views import WorkItemListCreateView

    request = APIRequestFactory().get("/api/v1/workitems", {"page_size": page_size})
    force_authenticate(request, user=worker)
    t0 = time.perf_counter()
    response = WorkItemListCreateView.as_view()(request)
    response.render()
    assert response.status_code == 200, response.content[:300]
    assert len(json.loads(response.content)["results"]) == page_size
    return time.perf_counter() - t0


def list_query_sql(worker) -> str:
    """The page query the view sends, as SQL (for its plan)."""
    from django.db import connection
    from django.db.models import F, Value
    from django.db.models.functions import Coalesce

    from workitems.api.views import FAR_FUTURE
    from workitems.selectors import work_item_list_for

    qs = work_item_list_for(actor=worker).annotate(due_sort=Coalesce(F("due_at"), Value(FAR_FUTURE)))
    sql, params = qs.order_by("-created_at", "-id")[:21].query.sql_with_params()
    return connection.ops.compose_sql(sql, params)


def list_runs(args, worker, queue, other_queue) -> list[tuple[str, str, str, str]]:
    from django.db import connection

    from workitems import selectors

    sizes = sorted(int(s) for s in args.sizes.split(","))
    have, rows, p50s = 0, [], {}
    ref = "(SELECT coalesce(max(created_at), now()) FROM workitems_workitem)"
    for size in sizes:
        # The history grows behind the newest page: the visible items one a millisecond, and
        # between them (a fifth as many) items of a queue the worker is no member of.
        n = size - have
        seed_items(queue, n, varying_sql={"created_at": f"{ref} - ({have} + g) * interval '5 milliseconds'"})
        seed_items(
            other_queue,
            n // 4,
            varying_sql={"created_at": f"{ref} - ({have} + g * 4 + 2) * interval '5 milliseconds' + interval '2 ms'"},
        )
        have = size
        analyze()
        new = [list_request(worker) for _ in range(args.samples)]
        current = selectors.policy.visible_filter
        selectors.policy.visible_filter = old_visibility
        try:
            with connection.cursor() as cur:
                cur.execute("SET jit = on")
            old = [list_request(worker) for _ in range(max(3, args.samples // 3))]
        finally:
            selectors.policy.visible_filter = current
            with connection.cursor() as cur:
                cur.execute("SET jit = off")
        p50s[size] = pct(new, 50)
        rows.append(
            (
                f"(b) worker GET /workitems, page of 20, {size:,} visible",
                f"p50 {pct(new, 50) * 1000:.1f} ms (the EXISTS filter with JIT on: {pct(old, 50) * 1000:.0f} ms)",
                "flat",
                "",
            )
        )
        print(f"  list at {size:,}: {pct(new, 50) * 1000:.1f} ms, before {pct(old, 50) * 1000:.0f} ms", flush=True)
    small, large = p50s[sizes[0]], p50s[sizes[-1]]
    rows.append(
        (
            f"(b) p50 at {sizes[-1]:,} / p50 at {sizes[0]:,}",
            f"**{large / small:.2f}x**",
            "≤ 1.5x",
            "met" if large / small <= 1.5 else "missed",
        )
    )
    print()
    print(explain(list_query_sql(worker)))
    return rows


def run(args, bench_url: str, t_start: float) -> int:
    from tests import factories

    svc = factories.user("hot-svc", roles=["service"])
    team = [factories.group("hot-team-ours"), factories.group("hot-team-floor"), factories.group("hot-team-list")]
    rows = []
    if "commands" in args.parts:
        print("(a) the command path …", flush=True)
        rows += command_path(args, bench_url, svc, team)
    if "procs" in args.parts:
        print(f"(a16) the command path at {args.procs} processes …", flush=True)
        rows += procs_path(args, bench_url, svc, team)
    if "list" in args.parts:
        print("(b) the worker's list …", flush=True)
        lister = factories.user("hot-lister", roles=["worker"], groups=[team[2]])
        visible = factories.queue("hot-list", groups=[team[2]])
        hidden = factories.queue("hot-hidden", groups=[team[0]])
        rows += list_runs(args, lister, visible, hidden)
    for part in (p for p in PARTS if p in CHILDREN and p in args.parts):
        rows += child_rows(part, getattr(args, CHILDREN[part][1]))
    print_table(rows, t_start)
    return 0


def child_rows(part: str, extra: str) -> list[tuple[str, str, str, str]]:
    """Run one of the other benches (CHILDREN) as a child process, its output shown as it
    comes, and return the rows of the table it printed last, each under the bench's name. A
    bench that fails gives one row saying so (the rest of the table still prints)."""
    script = Path(__file__).resolve().parent / CHILDREN[part][0]
    cmd = [sys.executable, str(script), *shlex.split(extra)]
    print(f"({part}) {' '.join(cmd[1:])} … ({load()})", flush=True)
    lines: list[str] = []
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc:  # noqa: S603
        for line in proc.stdout:
            print(f"  [{part}] {line}", end="", flush=True)
            lines.append(line.rstrip("\n"))
    if proc.returncode != 0:
        return [(f"[{script.name}]", f"failed (exit {proc.returncode}; its output is above)", "", "missed")]
    return [(f"[{script.name}] {row[0]}", *row[1:]) for row in table_rows(lines)]


def table_rows(lines: list[str]) -> list[tuple[str, ...]]:
    """The rows of the last `| measure | result | target | |` table in `lines`."""
    starts = [i for i, line in enumerate(lines) if line.startswith("| measure |")]
    if not starts:
        return []
    rows = []
    for line in lines[starts[-1] + 2 :]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
        rows.append(tuple(cells + [""] * (4 - len(cells)))[:4])
    return rows


def main() -> int:
    return bench_main(parse_args(), run)


if __name__ == "__main__":
    sys.exit(main())
