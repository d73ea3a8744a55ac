"""Distribution benchmark: claim-next throughput vs the raw SQL floor, claim-next latency as the
queue grows to 1M open items (with the query plan), and candidate resolution time.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres .venv/bin/python bench/claim_next.py

DATABASE_URL names the server (its database is only used to create the bench database).
The script creates its own database (`workstream_bench`, or --db), migrates it with
`call_command("migrate")`, seeds it with set-based `INSERT … SELECT generate_series`
(never the services one by one), measures, prints a table with the ratios and the
`EXPLAIN (ANALYZE, BUFFERS)` of the claim-next query, and drops the database (--keep keeps it).

  (a) throughput: 16 threads calling services.work_item_claim_next vs 16 threads issuing the
      raw floor through psycopg: UPDATE … WHERE id = (SELECT … FOR UPDATE SKIP LOCKED LIMIT 1)
      RETURNING, plus one audit and one outbox INSERT, one transaction per claim.
      Target: ours ≥ 50% of the floor.
  (b) claim-next latency (one caller) with 10k, 100k and 1M OFFERED items in the queue.
      Target: p50 at 1M ≤ 2 × p50 at 10k, the plan using wi_claim_next_idx.
  (c) resolution (constraints.resolve + least_loaded) with 1,000 candidates, every constraint
      on. Target: p99 < 10 ms.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import secrets
import sys
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

GROUP = "bench-workers"


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--db", default="workstream_bench", help="database to create (dropped first if it exists)")
    p.add_argument("--keep", action="store_true", help="keep the database afterwards")
    p.add_argument("--threads", type=int, default=16)
    p.add_argument("--duration", type=float, default=10.0, help="seconds per throughput run")
    p.add_argument("--tp-items", type=int, default=20_000, help="open items in each throughput queue")
    p.add_argument("--sizes", default="10000,100000,1000000", help="open items for the latency runs")
    p.add_argument("--samples", type=int, default=200, help="claim-next calls per latency size (at most)")
    p.add_argument("--budget", type=float, default=45.0, help="seconds per latency size (at least 3 calls)")
    p.add_argument("--profile", action="store_true", help="print cProfile of claim-next and of resolution")
    p.add_argument("--resolutions", type=int, default=300, help="resolutions measured in (c)")
    return p.parse_args()


def server_url() -> str:
    url = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    if not url.startswith(("postgres://", "postgresql://")):
        sys.exit("DATABASE_URL must point at a PostgreSQL server")
    return url


def with_db(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


def recreate_database(url: str, name: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def drop_database(url: str, name: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def setup_django(bench_url: str, *, migrate: bool = True) -> None:
    os.environ["DATABASE_URL"] = bench_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    os.environ.setdefault("DB_CONN_MAX_AGE", "600")
    os.environ.setdefault("CACHE_BACKEND", "locmem")
    import django

    django.setup()
    if not migrate:  # a process joining a run whose database is migrated (bench/hot_path.py --parts procs)
        return
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    if not values:
        return float("nan")
    k = max(0, min(len(values) - 1, round(p / 100 * (len(values) - 1))))
    return values[k]


# --- seeding -------------------------------------------------------------------------------------


def make_users(prefix: str, n: int, *, groups=()) -> list:
    """`n` worker users in bulk (one hashed password shared), members of `groups`."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import make_password
    from django.contrib.auth.models import Group

    from directory.roles import role_group_name

    User = get_user_model()
    pw = make_password("bench")
    User.objects.bulk_create([User(username=f"{prefix}{i:05d}", password=pw) for i in range(n)], batch_size=2000)
    users = list(User.objects.filter(username__startswith=prefix).order_by("id"))
    worker = Group.objects.get_or_create(name=role_group_name("worker"))[0]
    through = User.groups.through
    rows = [through(user_id=u.pk, group_id=g.pk) for u in users for g in (worker, *groups)]
    through.objects.bulk_create(rows, batch_size=5000)
    return users


def seed_items(
    queue,
    n: int,
    *,
    state: str = "OFFERED",
    assignee_sql: str = "NULL",
    extra: dict | None = None,
    varying_sql: dict | None = None,
) -> None:
    """Insert `n` work items into `queue` in one set-based statement. Every column comes from
    the model's own defaults (so the rows are what the ORM would write), except a few that
    vary with the series: run_id, priority, due_at, created_at (and `varying_sql`: column →
    SQL expression of the series number g, e.g. for the SLA columns)."""
    from django.db import connection

    from workitems.models import WorkItem

    template = WorkItem(
        workflow_id="bench", task_name="review", queue=queue, state=state, offered_at=None, **(extra or {})
    )
    varying = {
        "run_id": "'r' || g",
        "priority": "mod(g::bigint * 7919, 101)",
        "due_at": "CASE WHEN mod(g, 3) = 0 THEN NULL ELSE now() + mod(g, 5000) * interval '1 minute' END",
        "created_at": "now() - g * interval '1 millisecond'",
        "updated_at": "now()",
        "offered_at": "now()",
        "assignee_id": assignee_sql,
        "assigned_at": "now()" if state != "OFFERED" else "NULL",
        **(varying_sql or {}),
    }
    sql, params = series_insert(template, varying)
    with connection.cursor() as cur:
        cur.execute(sql, [*params, n])


def series_insert(template, varying: dict, first: int = 1) -> tuple[str, list]:
    """`INSERT INTO <table> (…) SELECT … FROM generate_series(first, %s) AS g` and its parameters
    (the count last): every column as the `template` instance holds it, except those of
    `varying` (column → SQL expression of the series number g, or (expression, its parameters))."""
    from django.db import connection

    cols, exprs, params = [], [], []
    for f in type(template)._meta.concrete_fields:
        if f.primary_key:
            continue
        cols.append(connection.ops.quote_name(f.column))
        if f.column in varying:
            expr, extra = varying[f.column] if isinstance(varying[f.column], tuple) else (varying[f.column], [])
            exprs.append(expr)
            params.extend(extra)
        else:
            exprs.append("%s")
            params.append(f.get_db_prep_save(getattr(template, f.attname), connection))
    table = type(template)._meta.db_table
    return (
        f"INSERT INTO {table} ({', '.join(cols)}) SELECT {', '.join(exprs)} FROM generate_series({first}, %s) AS g",
        params,
    )


def analyze() -> None:
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute("ANALYZE")


# --- (a) throughput ------------------------------------------------------------------------------


def run_threads(n: int, fn) -> float:
    barrier = threading.Barrier(n + 1)
    errors: list[BaseException] = []

    def body(i):
        try:
            barrier.wait()
            fn(i)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=body, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    barrier.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return time.perf_counter() - t0


def throughput_ours(users, queue_name: str, threads: int, duration: float) -> tuple[int, float]:
    from django.db import connections

    from workitems import services

    counts = [0] * threads

    def claimer(i):
        me = users[i]
        try:
            deadline = time.perf_counter() + duration
            while time.perf_counter() < deadline:
                if services.work_item_claim_next(actor=me, queue=queue_name) is None:
                    break
                counts[i] += 1
        finally:
            connections.close_all()

    elapsed = run_threads(threads, claimer)
    return sum(counts), elapsed


def floor_statements():
    """The raw claim: the UPDATE with the SKIP LOCKED subquery, the audit and outbox INSERTs
    (column lists from the models, so they match the real tables)."""
    from audit.models import AuditRecord
    from events.models import OutboxEvent
    from workitems.models import WorkItem

    wi = WorkItem._meta.db_table
    claim = (
        f"UPDATE {wi} SET state = 'ASSIGNED', assignee_id = %(user)s, assigned_at = now(), updated_at = now(), "
        f"version = version + 1, event_seq = event_seq + 1 "
        f"WHERE id = (SELECT id FROM {wi} WHERE state = 'OFFERED' AND queue_id = %(queue)s "
        f"AND (follow_up_at IS NULL OR follow_up_at <= now()) "
        f"ORDER BY priority DESC, due_at ASC NULLS LAST, created_at ASC, id ASC "
        f"LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING id, version, event_seq"
    )

    def insert(model):
        fields = [f for f in model._meta.concrete_fields if not f.primary_key]
        cols = [f.column for f in fields]
        # columns the floor does not set get the model's default (e.g. attempts, published_at)
        defaults = {f.column: f.get_default() for f in fields}
        sql = f"INSERT INTO {model._meta.db_table} ({', '.join(cols)}) VALUES ({', '.join(['%s'] * len(cols))})"
        return cols, defaults, sql

    return claim, insert(AuditRecord), insert(OutboxEvent)


def throughput_floor(db_url: str, users, queue_id: int, threads: int, duration: float) -> tuple[int, float]:
    import psycopg
    from psycopg.types.json import Jsonb

    claim_sql, (audit_cols, audit_defaults, audit_sql), (outbox_cols, outbox_defaults, outbox_sql) = floor_statements()
    counts = [0] * threads

    def claimer(i):
        user = users[i]
        with psycopg.connect(db_url) as conn:
            deadline = time.perf_counter() + duration
            while time.perf_counter() < deadline:
                with conn.transaction():
                    row = conn.execute(claim_sql, {"user": user.pk, "queue": queue_id}).fetchone()
                    if row is None:
                        return
                    item_id, version, seq = row
                    data = {"version": version, "assignee": user.username, "via": "claim-next"}
                    digest = hashlib.sha256(json.dumps([item_id, data], sort_keys=True).encode()).hexdigest()
                    audit = {
                        "stream": f"workitem:{item_id}",
                        "seq": version,
                        "work_item_id": item_id,
                        "action": "claim",
                        "actor_id": user.pk,
                        "actor_username": user.username,
                        "channel": "api",
                        "from_state": "OFFERED",
                        "to_state": "ASSIGNED",
                        "data": Jsonb(data),
                        "request_id": uuid.uuid4().hex,
                        "correlation_id": "",
                        "created_at": datetime.now(UTC),
                        "prev_hash": "",
                        "hash": digest,
                    }
                    conn.execute(audit_sql, [audit.get(c, audit_defaults[c]) for c in audit_cols])
                    payload = {"work_item": {"id": item_id, "state": "ASSIGNED", "assignee": user.username}}
                    event = {
                        "event_id": uuid.uuid4(),
                        "event_type": "workitem.claimed.v1",
                        "aggregate_type": "workitem",
                        "aggregate_id": str(item_id),
                        "sequence": seq,
                        "occurred_at": datetime.now(UTC),
                        "producer": "workstream",
                        "trace_id": "",
                        "correlation_id": "",
                        "payload": Jsonb(payload),
                        "attempts": 0,
                        "last_error": "",
                    }
                    conn.execute(outbox_sql, [event.get(c, outbox_defaults[c]) for c in outbox_cols])
                counts[i] += 1

    elapsed = run_threads(threads, claimer)
    return sum(counts), elapsed


# --- (b) latency + plan ---------------------------------------------------------------------------


def claim_next_sql(user, queue_name: str) -> str:
    """The SELECT … FOR UPDATE SKIP LOCKED that claim-next issues (captured, then rolled back)."""
    from django.db import connection, transaction
    from psycopg import ClientCursor

    from workitems import services

    seen: list[tuple[str, object]] = []

    def capture(execute, sql, params, many, context):
        seen.append((sql, params))
        return execute(sql, params, many, context)

    # An execute wrapper, not Django's query log: the log has no text for a prepared statement.
    with connection.execute_wrapper(capture), transaction.atomic():
        services.work_item_claim_next(actor=user, queue=queue_name)
        transaction.set_rollback(True)
    picks = [(sql, params) for sql, params in seen if "SKIP LOCKED" in sql]
    if not picks:
        raise RuntimeError("claim-next issued no SKIP LOCKED query")
    sql, params = picks[0]
    # The values written in (EXPLAIN plans them as a custom plan; the service's prepared
    # statement runs its generic plan, whose cost the latency runs measure).
    return ClientCursor(connection.connection).mogrify(sql, params)


def explain(sql: str) -> str:
    from django.db import connection, transaction

    with transaction.atomic(), connection.cursor() as cur:
        cur.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql)
        plan = "\n".join(r[0] for r in cur.fetchall())
        transaction.set_rollback(True)
    return plan


def latency(user, queue_name: str, samples: int, budget: float) -> tuple[list[float], list[float], int]:
    """Wall time of up to `samples` claim-next calls (at least 3; stops after `budget` seconds),
    the SQL time inside each call, and the queries per call."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from workitems import services

    services.work_item_claim_next(actor=user, queue=queue_name)  # warm up
    walls, sqls, nq = [], [], 0
    stop = time.perf_counter() + budget
    while len(walls) < samples and (len(walls) < 3 or time.perf_counter() < stop):
        with CaptureQueriesContext(connection) as ctx:
            t0 = time.perf_counter()
            got = services.work_item_claim_next(actor=user, queue=queue_name)
            walls.append((time.perf_counter() - t0) * 1000)
        assert got is not None, "the latency queue ran dry"
        sqls.append(sum(float(q["time"]) for q in ctx.captured_queries) * 1000)
        nq = len(ctx.captured_queries)
    return walls, sqls, nq


def floor_select(db_url: str, queue_id: int, n: int) -> tuple[list[float], str]:
    """The floor's own SELECT … FOR UPDATE SKIP LOCKED LIMIT 1 on the same queue (rolled back):
    its latency and its plan, to show what the index gives when the query lets it."""
    import psycopg

    from workitems.models import WorkItem

    sql = (
        f"SELECT id FROM {WorkItem._meta.db_table} WHERE state = 'OFFERED' AND queue_id = %s "
        f"AND (follow_up_at IS NULL OR follow_up_at <= now()) "
        f"ORDER BY priority DESC, due_at ASC NULLS LAST, created_at ASC, id ASC LIMIT 1 FOR UPDATE SKIP LOCKED"
    )
    times = []
    with psycopg.connect(db_url) as conn:
        for _ in range(n):
            t0 = time.perf_counter()
            conn.execute(sql, [queue_id]).fetchone()
            times.append((time.perf_counter() - t0) * 1000)
            conn.rollback()
        rows = conn.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql, [queue_id]).fetchall()
        conn.rollback()
    return times, "\n".join(r[0] for r in rows)


# --- (c) resolution -------------------------------------------------------------------------------


def seed_resolution(svc):
    """1,000 candidates in the queue's group, with every constraint biting somewhere."""
    import random

    from django.contrib.auth.models import Group
    from django.utils import timezone

    from audit.models import AuditRecord
    from directory.models import Profile
    from workitems import services
    from workitems.models import Queue, WorkItem

    rng = random.Random(7)  # noqa: S311 - bench data
    group = Group.objects.create(name="bench-resolution")
    queue = Queue.objects.create(name="bench-resolution", strategy="least_loaded", capacity_per_user=3)
    queue.candidate_groups.add(group)
    users = make_users("cand", 1000, groups=[group])
    now = timezone.now()
    profiles = []
    for i, u in enumerate(users):
        absent = i % 10 == 0  # 10% out of office, half of them with a delegate
        profiles.append(
            Profile(
                user=u,
                capacity=rng.choice([None, 4, 6]),
                skills={"german": rng.randint(1, 10), "claims": rng.randint(1, 10)} if i % 7 else {"german": 3},
                out_of_office_from=now if absent else None,
                delegate=users[(i + 1) % 1000] if absent and i % 20 == 0 else None,
                last_assigned_at=now - timedelta(minutes=rng.randint(0, 10_000)) if i % 3 else None,
            )
        )
    Profile.objects.bulk_create(profiles)
    from django.contrib.auth import get_user_model

    get_user_model().objects.filter(pk__in=[u.pk for u in users[5::40]]).update(is_active=False)  # 2.5% inactive
    # load: 2,000 held items over the first 700 candidates (some at the queue's capacity)
    ids = [u.pk for u in users[:700]]
    seed_items(queue, 2000, state="ASSIGNED", assignee_sql=f"(ARRAY{ids})[1 + mod(g * 31, {len(ids)})]")
    # separation of duties: 40 siblings of the run, each claimed (audited) by a candidate
    siblings = []
    for k in range(40):
        it = WorkItem.objects.create(
            workflow_id="bench-sod",
            run_id="run-1",
            task_name=f"step-{k}",
            queue=queue,
            sod_key="four-eyes",
            state="ASSIGNED",
            assignee=users[100 + k],
        )
        siblings.append(it)
    AuditRecord.objects.bulk_create(
        [
            AuditRecord(
                stream=f"workitem:{it.pk}",
                seq=1,
                work_item=it,
                action="claim",
                actor=it.assignee,
                actor_username=it.assignee.username,
                channel="system",
                hash=uuid.uuid4().hex * 2,
            )
            for it in siblings
        ]
    )
    item = services.work_item_create(
        actor=svc,
        data={
            "workflow_id": "bench-sod",
            "run_id": "run-1",
            "task_name": "approve",
            "queue": queue.name,
            "strategy": "offer",  # created without a push; the bench resolves it below
            "required_skills": ["german", "claims"],
            "excluded_users": [u.username for u in users[200:230]],
            "sod_key": "four-eyes",
        },
    )
    item.strategy = "least_loaded"
    return item


def resolution(item, n: int) -> tuple[list[float], int, int, str | None, float]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from distribution import constraints, strategies

    strategy = strategies.get("least_loaded")
    for _ in range(5):
        constraints.resolve(item)
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        res = constraints.resolve(item)
        strategy.choose(res.candidates, item)
        times.append((time.perf_counter() - t0) * 1000)
    with CaptureQueriesContext(connection) as ctx:
        t0 = time.perf_counter()
        res = constraints.resolve(item)
        strategy.choose(res.candidates, item)
        wall = (time.perf_counter() - t0) * 1000
    sql_ms = sum(float(q["time"]) for q in ctx.captured_queries) * 1000
    return times, res.pool_size, len(res.candidates), res.emptied_by, sql_ms / wall if wall else 0.0


def profile(title: str, fn, n: int) -> None:
    """cProfile `n` calls of `fn`: the top functions by own time and the project's by cumulative time."""
    import cProfile
    import io
    import pstats

    pr = cProfile.Profile()
    pr.enable()
    for _ in range(n):
        fn()
    pr.disable()
    out = io.StringIO()
    st = pstats.Stats(pr, stream=out)
    st.sort_stats("tottime").print_stats(15)
    st.sort_stats("cumulative").print_stats(r"/(workitems|distribution|audit|events|directory)/", 25)
    print(f"\n--- profile: {title}, {n} calls ---")
    print("\n".join(line[:160] for line in out.getvalue().splitlines() if line.strip()))


# --- main -------------------------------------------------------------------------------------


def print_table(rows: list[tuple[str, str, str, str]], t_start: float) -> None:
    """The versions, the total time and the (measure, result, target, verdict) rows as Markdown."""
    import django
    from django.db import connection

    total = time.perf_counter() - t_start
    with connection.cursor() as cur:
        cur.execute("SELECT version()")
        pg = cur.fetchone()[0].split(",")[0]
    print()
    print(f"Django {django.get_version()}, {pg}, {os.cpu_count()} CPUs; total bench time {total:.0f}s")
    print()
    print("| measure | result | target | |")
    print("|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(r) + " |")


def bench_main(args, run) -> int:
    """Create the bench database (`args.db`), migrate it, `run(args, bench_url, t_start)`, and
    drop it unless `args.keep`."""
    server = server_url()
    bench_url = with_db(server, args.db)
    t_start = time.perf_counter()
    print(f"creating database {args.db} …", flush=True)
    recreate_database(server, args.db)
    # Outside DEBUG the settings want a strong signing key: a throwaway one for this process.
    os.environ.setdefault("SECRET_KEY", secrets.token_urlsafe(50))
    try:
        setup_django(bench_url)
        return run(args, bench_url, t_start)
    finally:
        from django.db import connections

        connections.close_all()
        if not args.keep:
            drop_database(server, args.db)


def main() -> int:
    return bench_main(parse_args(), run)


def run(args, bench_url: str, t_start: float) -> int:
    from django.contrib.auth.models import Group

    from directory.roles import role_group_name
    from workitems import services
    from workitems.models import Queue

    rows: list[tuple[str, str, str, str]] = []  # (measure, value, target, verdict)
    group = Group.objects.create(name=GROUP)
    claimers = make_users("claimer", max(args.threads, 1), groups=[group])
    svc = make_users("svc", 1)[0]
    svc.groups.add(Group.objects.get_or_create(name=role_group_name("service"))[0])
    q_ours = Queue.objects.create(name="bench-ours")
    q_floor = Queue.objects.create(name="bench-floor")
    q_lat = Queue.objects.create(name="bench-latency")
    for q in (q_ours, q_floor, q_lat):
        q.candidate_groups.add(group)

    # (a) throughput
    per_queue = args.tp_items
    print(f"(a) seeding {per_queue:,} items in each throughput queue …", flush=True)
    seed_items(q_ours, per_queue)
    seed_items(q_floor, per_queue)
    analyze()
    print(f"(a) {args.threads} threads × {args.duration:.0f}s: services.work_item_claim_next …", flush=True)
    n_ours, s_ours = throughput_ours(claimers, q_ours.name, args.threads, args.duration)
    print(f"(a) {args.threads} threads × {args.duration:.0f}s: raw psycopg floor …", flush=True)
    n_floor, s_floor = throughput_floor(bench_url, claimers, q_floor.pk, args.threads, args.duration)
    tp_ours, tp_floor = n_ours / s_ours, n_floor / s_floor
    ratio = tp_ours / tp_floor if tp_floor else 0
    rows.append(
        (f"(a) claim-next, {args.threads} threads, {per_queue:,}-item queue: ours", f"{tp_ours:,.0f} claims/s", "", "")
    )
    rows.append(
        (
            f"(a) raw floor (UPDATE…SKIP LOCKED + audit + outbox), {args.threads} threads",
            f"{tp_floor:,.0f} claims/s",
            "",
            "",
        )
    )
    rows.append(("(a) ours / floor", f"{ratio:.1%}", "≥ 50%", "met" if ratio >= 0.5 else "MISSED"))

    # where a claim's time goes, without the queue-size effect: one caller, a 1,000-item queue
    q_small = Queue.objects.create(name="bench-small")
    q_small.candidate_groups.add(group)
    seed_items(q_small, 1000)
    analyze()
    walls, sqls, nq = latency(claimers[1], q_small.name, 100, args.budget)
    rows.append(
        (
            "(a) one claim-next, 1,000-item queue, one caller",
            f"p50 {pct(walls, 50):.1f} ms, of which SQL "
            f"{pct(sqls, 50):.1f} ms in {nq} queries; the floor's claim is 3 statements",
            "",
            "",
        )
    )
    if args.profile:
        profile(
            "claim-next on a 1,000-item queue",
            lambda: services.work_item_claim_next(actor=claimers[2], queue=q_small.name),
            50,
        )

    # (b) latency as the queue grows
    sizes = [int(s) for s in args.sizes.split(",") if s]
    user = claimers[0]
    seeded, p50s, plans, floor_p50s, floor_plans = 0, {}, {}, {}, {}
    for size in sizes:
        add = size - seeded + args.samples + 30
        print(f"(b) seeding the latency queue to {size:,} open items …", flush=True)
        seed_items(q_lat, add)
        seeded = size  # the calls of the previous size consumed their own extra items
        analyze()
        walls, sqls, nq = latency(user, q_lat.name, args.samples, args.budget)
        p50s[size] = pct(walls, 50)
        rows.append(
            (
                f"(b) claim-next latency, {size:,} open items",
                f"p50 {pct(walls, 50):.1f} ms / "
                f"p99 {pct(walls, 99):.1f} ms (n={len(walls)}; SQL p50 {pct(sqls, 50):.1f} ms, {nq} queries)",
                "",
                "",
            )
        )
        plans[size] = explain(claim_next_sql(user, q_lat.name))
        ftimes, floor_plans[size] = floor_select(bench_url, q_lat.pk, 50)
        floor_p50s[size] = pct(ftimes, 50)
        rows.append(
            (
                f"(b) the floor's SELECT … SKIP LOCKED LIMIT 1, {size:,} open items",
                f"p50 {pct(ftimes, 50):.2f} ms / p99 {pct(ftimes, 99):.2f} ms (n=50)",
                "",
                "",
            )
        )
    first, last = sizes[0], sizes[-1]
    growth = p50s[last] / p50s[first] if p50s[first] else float("inf")
    rows.append(
        (f"(b) p50 at {last:,} / p50 at {first:,}", f"{growth:.2f}×", "≤ 2×", "met" if growth <= 2 else "MISSED")
    )
    fgrowth = floor_p50s[last] / floor_p50s[first] if floor_p50s[first] else float("inf")
    rows.append((f"(b) the floor's SELECT: p50 at {last:,} / p50 at {first:,}", f"{fgrowth:.2f}×", "", ""))
    uses_index = {s: "wi_claim_next_idx" in p for s, p in plans.items()}
    rows.append(
        (
            "(b) plan uses wi_claim_next_idx",
            ", ".join(f"{s:,}: {'yes' if u else 'NO'}" for s, u in uses_index.items()),
            "yes",
            "met" if all(uses_index.values()) else "MISSED",
        )
    )

    # (c) resolution
    print("(c) seeding 1,000 candidates …", flush=True)
    item = seed_resolution(svc)
    analyze()
    times, pool, left, emptied, sql_share = resolution(item, args.resolutions)
    p99 = pct(times, 99)
    rows.append(
        (
            f"(c) resolve + least_loaded, pool {pool:,} → {left} after all constraints",
            f"p50 {pct(times, 50):.1f} ms / p99 {p99:.1f} ms (SQL {sql_share:.0%} of it)",
            "p99 < 10 ms",
            "met" if p99 < 10 else "MISSED",
        )
    )

    if args.profile:
        from distribution import constraints

        profile("constraints.resolve, 1,000 candidates", lambda: constraints.resolve(item), 30)

    print_table(rows, t_start)
    for size in (sizes[0], sizes[-1]):
        print(f"\nEXPLAIN (ANALYZE, BUFFERS) of claim-next's SELECT … FOR UPDATE SKIP LOCKED, {size:,} open items:\n")
        print(plans[size])
    print(f"\nEXPLAIN (ANALYZE, BUFFERS) of the floor's SELECT, {sizes[-1]:,} open items:\n")
    print(floor_plans[sizes[-1]])
    return 0


if __name__ == "__main__":
    sys.exit(main())
