"""Outbox relay benchmark: throughput to RabbitMQ with publisher confirms, and create→published lag.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/ws_bench_relay \\
        .venv/bin/python bench/relay_throughput.py [--events 20000] [--batch 500] [--rate 200] [--duration 20]

Uses its own database (created and migrated when missing; the outbox is emptied
first) and its own exchange and queue (random suffix, deleted at the end), on the
RabbitMQ at AMQP_URL and the Redis at REDIS_URL. It measures, in one run:

1. baselines without a database, same broker, same message size:
   a. kombu `Producer.publish` with `confirm_publish=True` (one confirm round trip per message);
   b. py-amqp `basic_publish` per message, confirms awaited per batch (the usual batched confirms);
2. the relay: `--events` outbox rows drained by `events.relay.relay_drain` (SKIP LOCKED
   batches, per-item order, confirms per batch, rows marked published, one transaction
   per batch), with one relay worker and with two (`relay.workers`, the default);
3. lag: `manage.py relay_outbox` running as in a deployment (nudged on commit through
   Redis) while changes are written at a steady `--rate` per second for `--duration`
   seconds, by load-generator processes: (a) outbox rows alone, each in its own
   transaction as a create writes it (a generator cheap enough to hold the rate on a
   busy 2-core machine), (b) `work_item_create` through the service layer (item, audit,
   outbox; the achieved rate is reported: the Python create path is CPU-bound);
   lag = published_at − occurred_at of each `workitem.created.v1` event, p50/p99/max.

The messages are persistent and routed to one durable queue, so the broker writes
them to disk before it confirms, as it would with a real consumer queue bound.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

BASE = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE))


def _setup(config_path: Path, *, migrate: bool = True) -> None:
    os.environ["WORKSTREAM_CONFIG"] = str(config_path)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    os.environ.setdefault("LOG_FORMAT", "plain")
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith("postgres"):
        sys.exit("set DATABASE_URL to a PostgreSQL database for the benchmark (it is created when missing)")
    import django

    if migrate:
        import psycopg

        base, _, name = url.rpartition("/")
        with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
                conn.execute(f'CREATE DATABASE "{name}"')
    django.setup()
    if migrate:
        from django.core.management import call_command

        call_command("migrate", verbosity=0)


def _percentile(values: list[float], p: float) -> float:
    values = sorted(values)
    k = (len(values) - 1) * p
    lo, hi = int(k), min(int(k) + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def _sample_body(aggregate: int = 1, seq: int = 1) -> dict:
    return {
        "work_item": {
            "id": aggregate,
            "workflow_id": f"claims-{aggregate}",
            "run_id": f"run-{aggregate}",
            "task_name": "review-claim",
            "title": f"Review claim {aggregate}",
            "queue": "claims",
            "priority": 50,
            "state": "OFFERED",
            "sub_status": "",
            "assignee": None,
            "version": seq,
            "escalation_level": 0,
            "context_data": {"claim_id": aggregate, "amount": 1200, "currency": "EUR"},
            "callback_url": "",
            "correlation_id": "",
        },
        "transition": {"action": "create", "from_state": "", "to_state": "OFFERED", "actor": "svc"},
    }


def baseline_per_message_confirms(exchange: str, n: int) -> float:
    from django.conf import settings
    from kombu import Connection, Exchange

    body = json.dumps(_sample_body()).encode()
    with Connection(settings.AMQP_URL, transport_options={"confirm_publish": True}) as conn:
        producer = conn.Producer(exchange=Exchange(exchange, "topic", durable=True))
        t0 = time.perf_counter()
        for _ in range(n):
            producer.publish(body, routing_key="workitem.created.v1", delivery_mode=2, content_type="application/json")
        return n / (time.perf_counter() - t0)


def baseline_batched_confirms(exchange: str, n: int, batch: int) -> float:
    import amqp
    from django.conf import settings
    from kombu import Connection

    body = json.dumps(_sample_body()).encode()
    with Connection(settings.AMQP_URL) as conn:
        conn.connect()
        ch = conn.channel()
        ch.confirm_select()
        pending: set[int] = set()

        def on_ack(tag, multiple):
            if multiple:
                pending.difference_update([t for t in pending if t <= tag])
            else:
                pending.discard(tag)

        ch.events["basic_ack"].add(on_ack)
        tag = 0
        t0 = time.perf_counter()
        for start in range(0, n, batch):
            for _ in range(min(batch, n - start)):
                msg = amqp.Message(body, delivery_mode=2, content_type="application/json", message_id=str(uuid.uuid4()))
                ch.basic_publish(msg, exchange=exchange, routing_key="workitem.created.v1")
                tag += 1
                pending.add(tag)
            while pending:
                conn.drain_events(timeout=30)
        return n / (time.perf_counter() - t0)


def fill_outbox(n: int, per_aggregate: int = 5) -> None:
    from django.db import connection
    from django.utils import timezone

    from events.models import OutboxEvent

    now = timezone.now()
    aggregates = max(n // per_aggregate, 1)
    rows = [
        OutboxEvent(
            event_type="workitem.created.v1",
            aggregate_id=f"bench-{a}",
            sequence=s,
            occurred_at=now,
            producer="workstream",
            payload=_sample_body(a, s),
        )
        for s in range(1, per_aggregate + 1)
        for a in range(aggregates)
    ][:n]
    OutboxEvent.objects.bulk_create(rows, batch_size=5000)
    with connection.cursor() as cur:
        cur.execute("ANALYZE events_outboxevent")


def empty_outbox() -> None:
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute("TRUNCATE events_outboxevent, events_delivery")
        cur.execute("VACUUM ANALYZE events_outboxevent")


def relay_drain_rate(workers: int, batch: int, expected: int) -> float:
    """Drain `expected` rows with `workers` relay threads (manage.py relay_outbox --until-empty, in-process)."""
    from django.db.models import Max, Min

    from events.models import OutboxEvent
    from events.runner import RelayProcess

    t0 = time.perf_counter()
    n = RelayProcess(batch_size=batch, workers=workers, webhooks_enabled=False).run(until_empty=True)
    wall = time.perf_counter() - t0
    assert n == expected, (n, expected)
    span = OutboxEvent.objects.aggregate(a=Min("published_at"), b=Max("published_at"))
    first_to_last = (span["b"] - span["a"]).total_seconds()
    # The first batch's commit is the first published_at: add one batch's share of the wall time.
    return expected / max(wall, first_to_last)


def creator(kind: str, rate: float, duration: float, prefix: str) -> None:
    """Child process: write at `rate` per second, on schedule, once the parent says when to start.

    kind `service`: `work_item_create` (item, audit record and outbox row in one transaction);
    kind `outbox`: only the outbox row of such a change (`outbox_enqueue` in its own
    transaction, nudge on commit), a generator light enough to hold the rate on a busy machine.
    """
    from django.contrib.auth import get_user_model
    from django.db import transaction

    from events.outbox import outbox_enqueue
    from workitems import services

    svc = get_user_model().objects.get(username="bench-svc")
    print("ready", flush=True)
    start_at = float(sys.stdin.readline())
    total = int(rate * duration)
    late = 0
    for i in range(total):
        delay = start_at + i / rate - time.time()
        if delay > 0:
            time.sleep(delay)
        elif delay < -0.05:
            late += 1
        if kind == "service":
            services.work_item_create(
                actor=svc, data={"workflow_id": f"{prefix}-{i}", "task_name": "t", "queue": "bench-relay"}
            )
        else:
            with transaction.atomic():
                outbox_enqueue(
                    event_type="workitem.created.v1", aggregate_id=f"{prefix}-{i}", sequence=1, payload=_sample_body(i)
                )
    print(json.dumps({"created": total, "late": late, "finished_at": time.time()}), flush=True)


def lag_at_rate(env: dict, kind: str, rate: float, duration: float, creators: int) -> dict:
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.db import connection

    from config import wsconfig
    from events.models import OutboxEvent
    from workitems.models import Queue

    svc = get_user_model().objects.get_or_create(username="bench-svc")[0]
    svc.groups.add(Group.objects.get_or_create(name=wsconfig.get().roles.service)[0])
    Queue.objects.get_or_create(name="bench-relay")
    empty_outbox()
    relay_proc = subprocess.Popen(  # noqa: S603 - our own manage.py
        [sys.executable, str(BASE / "manage.py"), "relay_outbox", "--no-webhooks"], env=env, stdout=subprocess.DEVNULL
    )
    procs = [
        subprocess.Popen(  # noqa: S603 - this script, in its creator mode
            [sys.executable, __file__, "--creator", kind, str(rate / creators), str(duration), f"lag{c}"],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for c in range(creators)
    ]
    for p in procs:
        assert p.stdout.readline().strip() == "ready"
    time.sleep(2)  # the relay is up too (it starts alongside the creators)
    start_at = time.time() + 0.5
    for p in procs:
        p.stdin.write(f"{start_at}\n")
        p.stdin.flush()
    reports = [json.loads(p.communicate(timeout=duration + 300)[0].strip().splitlines()[-1]) for p in procs]
    created = sum(r["created"] for r in reports)
    achieved = created / (max(r["finished_at"] for r in reports) - start_at)
    deadline = time.monotonic() + 60
    while OutboxEvent.objects.filter(published_at__isnull=True).exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    relay_proc.terminate()
    relay_proc.wait(timeout=30)
    with connection.cursor() as cur:
        cur.execute(
            "SELECT EXTRACT(EPOCH FROM published_at - occurred_at) * 1000 FROM events_outboxevent "
            "WHERE event_type = 'workitem.created.v1' AND published_at IS NOT NULL"
        )
        lags = [float(r[0]) for r in cur.fetchall()]
    return {
        "writes": created,
        "creators": creators,
        "achieved_rate": round(achieved, 1),
        "late_starts": sum(r["late"] for r in reports),
        "published": len(lags),
        "lag_ms_p50": round(_percentile(lags, 0.50), 1),
        "lag_ms_p99": round(_percentile(lags, 0.99), 1),
        "lag_ms_max": round(max(lags), 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=20000)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--rate", type=float, default=200)
    ap.add_argument("--duration", type=float, default=20)
    ap.add_argument("--per-message-baseline", type=int, default=1000, help="messages for baseline a (slow)")
    ap.add_argument("--creators", type=int, default=4, help="processes creating work items for the lag run")
    if len(sys.argv) > 1 and sys.argv[1] == "--creator":
        kind, rate, duration, prefix = sys.argv[2:6]
        _setup(Path(os.environ["WORKSTREAM_CONFIG"]), migrate=False)
        creator(kind, float(rate), float(duration), prefix)
        return
    args = ap.parse_args()

    suffix = uuid.uuid4().hex[:8]
    exchange, queue = f"bench.events.{suffix}", f"bench.sink.{suffix}"
    cfg = {
        "features": {"events": {"publish": True}},
        "eventBus": {"exchange": exchange},
        "relay": {"nudge": "process", "pollSeconds": 1},
        "performance": {"outboxBatchSize": args.batch},
    }
    tmp = Path(tempfile.mkdtemp(prefix="bench-relay-"))
    config_path = tmp / "workstream.yaml"
    config_path.write_text(json.dumps(cfg))  # JSON is YAML
    _setup(config_path)

    from django.conf import settings
    from kombu import Connection

    env = dict(os.environ)
    results: dict = {"load_before": os.getloadavg(), "events": args.events, "batch": args.batch}
    with Connection(settings.AMQP_URL) as conn:
        ch = conn.channel()
        ch.exchange_declare(exchange, "topic", durable=True, auto_delete=False)
        ch.queue_declare(queue, durable=True, auto_delete=False, arguments={"x-expires": 30 * 60 * 1000})
        ch.queue_bind(queue, exchange, "#")
        try:
            empty_outbox()
            results["baseline_per_message_confirms"] = round(
                baseline_per_message_confirms(exchange, args.per_message_baseline), 1
            )
            ch.queue_purge(queue)
            results["baseline_batched_confirms"] = round(
                baseline_batched_confirms(exchange, args.events, args.batch), 1
            )
            ch.queue_purge(queue)

            for workers in (1, 2):
                fill_outbox(args.events)
                results[f"relay_{workers}_worker"] = round(relay_drain_rate(workers, args.batch, args.events), 1)
                ch.queue_purge(queue)
                empty_outbox()

            env["WORKSTREAM_CONFIG"] = str(config_path)
            results["lag_outbox_writes"] = lag_at_rate(env, "outbox", args.rate, args.duration, 2)
            results["lag_service_creates"] = lag_at_rate(env, "service", args.rate, args.duration, args.creators)
            ch.queue_purge(queue)
        finally:
            ch.queue_delete(queue)
            ch.exchange_delete(exchange)
    for workers in (1, 2):
        results[f"relay_{workers}_worker_vs_batched_baseline"] = round(
            results[f"relay_{workers}_worker"] / results["baseline_batched_confirms"], 2
        )
    results["load_after"] = os.getloadavg()
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
