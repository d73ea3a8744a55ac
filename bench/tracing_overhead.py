"""What tracing costs: the relay's drain rate and a create through the service layer, tracing off vs on.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/ws_bench_tracing \\
        .venv/bin/python bench/tracing_overhead.py [--events 5000] [--creates 300] [--rounds 3]

Uses its own database (created and migrated when missing; its outbox is emptied) and its own
exchange and queue (random suffix, deleted at the end), on the RabbitMQ at AMQP_URL. Off and on
alternate in each round, so both see the same machine; the medians and the on/off ratio are
printed. "On" is config.tracing.install() with an SDK TracerProvider whose BatchSpanProcessor
hands the spans to an exporter that drops them (what is measured is the spans' making, not a
collector's network): Django, psycopg, Celery and redis instrumented, as with OTEL_* set.

1. relay: `--events` outbox rows (each with a stored `traceparent`, as a traced change writes
   them) drained by one relay worker (`RelayProcess(workers=1).run(until_empty=True)`), events/s;
   on, every event gets its PRODUCER span and a SQL span per relay statement;
2. create: `--creates` `work_item_create` calls, each in a root span as a request would be, ms per
   create; on, a span per SQL statement and Redis command of the create.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from relay_throughput import _setup, empty_outbox, fill_outbox  # noqa: E402 - bench/ is on the path

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
SPANS = [0]  # spans the "on" rounds made (and the exporter dropped)


def _provider():
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    class Dropped(SpanExporter):
        def export(self, spans):
            SPANS[0] += len(spans)
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(Dropped(), max_queue_size=65536))
    return provider


def _tracing(on: bool) -> None:
    from django.db import connection

    from config import tracing

    connection.close()  # the next connection is opened through (or past) the instrumented psycopg
    if tracing.enabled():
        tracing.current_provider().force_flush()
    if on:
        tracing.install(_provider())
    else:
        tracing.uninstall()


def relay_round(events: int) -> float:
    from django.db import connection

    from events.runner import RelayProcess

    fill_outbox(events)
    with connection.cursor() as cur:
        cur.execute("UPDATE events_outboxevent SET traceparent = %s WHERE published_at IS NULL", [TRACEPARENT])
    t0 = time.perf_counter()
    n = RelayProcess(workers=1, webhooks_enabled=False).run(until_empty=True)
    wall = time.perf_counter() - t0
    assert n == events, (n, events)
    empty_outbox()
    return events / wall


def create_round(svc, queue, creates: int) -> float:
    from opentelemetry.trace import SpanKind

    from config import context, tracing
    from workitems import services

    t0 = time.perf_counter()
    for i in range(creates):
        root = tracing.continued("POST api/v1/workitems", parent=None, kind=SpanKind.SERVER)
        with root, context.acting(channel="api"):
            services.work_item_create(
                actor=svc, data={"workflow_id": f"wf-{i}", "task_name": "review", "queue": queue.name}
            )
    return (time.perf_counter() - t0) / creates * 1000


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=5000)
    ap.add_argument("--creates", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    # Outside DEBUG the settings want a strong signing key: a throwaway one for this process.
    os.environ.setdefault("SECRET_KEY", secrets.token_urlsafe(50))

    suffix = uuid.uuid4().hex[:8]
    exchange, sink = f"bench.events.{suffix}", f"bench.sink.{suffix}"
    cfg = {
        "features": {"events": {"publish": True}},
        "eventBus": {"exchange": exchange},
        "relay": {"nudge": "none"},
    }
    config_path = Path(tempfile.mkdtemp(prefix="bench-tracing-")) / "workstream.yaml"
    config_path.write_text(json.dumps(cfg))  # JSON is YAML
    _setup(config_path)

    from django.conf import settings
    from kombu import Connection

    from tests import factories

    svc = factories.user(f"trace-svc-{suffix}", roles=["service"])
    team = factories.group(f"trace-team-{suffix}")
    queue = factories.queue(f"trace-q-{suffix}", groups=[team])
    results = {"off": {"relay": [], "create": []}, "on": {"relay": [], "create": []}}
    load_before = os.getloadavg()
    with Connection(settings.AMQP_URL) as conn:
        ch = conn.channel()
        ch.exchange_declare(exchange, "topic", durable=True, auto_delete=False)
        ch.queue_declare(sink, durable=True, auto_delete=False, arguments={"x-expires": 30 * 60 * 1000})
        ch.queue_bind(sink, exchange, "#")
        try:
            empty_outbox()
            for r in range(args.rounds):
                for mode in ("off", "on") if r % 2 == 0 else ("on", "off"):
                    _tracing(mode == "on")
                    results[mode]["relay"].append(relay_round(args.events))
                    results[mode]["create"].append(create_round(svc, queue, args.creates))
                    empty_outbox()  # the creates' events are not the next relay round's
                    ch.queue_purge(sink)
                    print(
                        f"round {r + 1} {mode}: relay {results[mode]['relay'][-1]:.0f} events/s, "
                        f"create {results[mode]['create'][-1]:.2f} ms",
                        flush=True,
                    )
        finally:
            _tracing(False)
            ch.queue_delete(sink)
            ch.exchange_delete(exchange)
    off_r, on_r = (statistics.median(results[m]["relay"]) for m in ("off", "on"))
    off_c, on_c = (statistics.median(results[m]["create"]) for m in ("off", "on"))
    print(f"spans made while on: {SPANS[0]}")
    print(f"load average before: {load_before[0]:.1f}, after: {os.getloadavg()[0]:.1f}")
    print(
        f"relay drain, 1 worker, {args.events} events: off {off_r:.0f}/s, on {on_r:.0f}/s (on/off {on_r / off_r:.2f}x)"
    )
    print(
        f"work_item_create, {args.creates} per round: off {off_c:.2f} ms, on {on_c:.2f} ms (on/off {on_c / off_c:.2f}x)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
