"""The relay's memory over a large drain (issue 13, target 6).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres REDIS_URL=redis://127.0.0.1:6379/15 \\
        .venv/bin/python bench/relay_memory.py --events 1000000

Creates its own database (`ws_h_bench_relay_mem`, or --db) and migrates it, fills the outbox
with --events rows set-based (`INSERT … SELECT generate_series`: five events per aggregate, the
payload of a created item), declares its own exchange and a queue bound to it that keeps only
the newest 10,000 messages (so the broker does not hold the whole drain), then runs
`manage.py relay_outbox --until-empty --no-webhooks` as deployed (its default workers and
batch size) and samples the process's RSS (/proc/<pid>/statm) every --every seconds with the
events left. Growth is measured from the sample after the first --warmup events to the last
before the drain ends. Target: flat, < 10 % growth. Drops the database unless --keep.
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

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from claim_next import bench_main, print_table, series_insert  # noqa: E402

EXCHANGE = f"bench.relaymem.{uuid.uuid4().hex[:8]}"


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--db", default="ws_h_bench_relay_mem", help="database to create (dropped first if it exists)")
    p.add_argument("--keep", action="store_true", help="keep the database afterwards")
    p.add_argument("--events", type=int, default=1_000_000)
    p.add_argument("--warmup", type=int, default=20_000, help="events drained before the first sample counts")
    p.add_argument("--every", type=float, default=5.0, help="seconds between samples")
    return p.parse_args()


def load() -> str:
    return "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def fill(n: int, per_aggregate: int = 5) -> None:
    from django.db import connection

    from events.models import OutboxEvent

    template = OutboxEvent(event_type="workitem.created.v1", aggregate_id="x", sequence=1, producer="workstream")
    aggregates = max(n // per_aggregate, 1)
    payload = {
        "work_item": {
            "id": 1,
            "workflow_id": "claims-1",
            "run_id": "run-1",
            "task_name": "review-claim",
            "title": "Review claim",
            "queue": "claims",
            "priority": 50,
            "state": "OFFERED",
            "version": 1,
            "context_data": {"claim_id": 1, "amount": 1200, "currency": "EUR"},
        },
        "transition": {"action": "create", "from_state": "", "to_state": "OFFERED", "actor": "svc"},
    }
    varying = {
        "event_id": "gen_random_uuid()",
        "aggregate_id": f"'bench-' || mod(g, {aggregates})",
        "sequence": f"(g / {aggregates}) + 1",
        "occurred_at": "now()",
        "payload": ("%s::jsonb", [json.dumps(payload)]),
    }
    sql, params = series_insert(template, varying, first=0)
    with connection.cursor() as cur:
        cur.execute(sql, [*params, n - 1])
        cur.execute("VACUUM ANALYZE events_outboxevent")


def pending() -> int:
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute("SELECT count(*) FROM events_outboxevent WHERE published_at IS NULL")
        return cur.fetchone()[0]


def rss(pid: int) -> int:
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def run(args, bench_url: str, t_start: float) -> int:
    from django.conf import settings
    from django.db import connections
    from kombu import Connection

    queue = f"{EXCHANGE}.sink"
    print(f"filling the outbox with {args.events:,} events … ({load()})", flush=True)
    t0 = time.perf_counter()
    fill(args.events)
    print(f"  {time.perf_counter() - t0:.0f}s", flush=True)
    samples: list[tuple[float, int, int]] = []  # (seconds, events left, RSS)
    with Connection(settings.AMQP_URL) as conn:
        ch = conn.channel()
        ch.exchange_declare(EXCHANGE, "topic", durable=True, auto_delete=False)
        ch.queue_declare(queue, durable=True, auto_delete=False, arguments={"x-max-length": 10_000})
        ch.queue_bind(queue, EXCHANGE, "#")
        try:
            connections.close_all()
            cmd = [sys.executable, str(HERE.parent / "manage.py"), "relay_outbox", "--until-empty", "--no-webhooks"]
            proc = subprocess.Popen(cmd, env=dict(os.environ, DATABASE_URL=bench_url))  # noqa: S603
            t0 = time.perf_counter()
            try:
                while proc.poll() is None:
                    time.sleep(args.every)
                    try:
                        now_rss = rss(proc.pid)
                    except (OSError, IndexError, ValueError):
                        break
                    if not now_rss:  # exited, not yet reaped
                        break
                    left = pending()
                    samples.append((time.perf_counter() - t0, left, now_rss))
                    print(
                        f"  {samples[-1][0]:.0f}s: {left:,} left, RSS {now_rss / 2**20:.1f} MiB; {load()}", flush=True
                    )
                proc.wait()
            finally:
                if proc.poll() is None:
                    proc.terminate()
                    proc.wait(30)
            wall = time.perf_counter() - t0
        finally:
            ch.queue_delete(queue)
            ch.exchange_delete(EXCHANGE)
    left = pending()
    drained = args.events - left
    counted = [s for s in samples if args.events - s[1] >= args.warmup]
    if len(counted) < 2:
        raise RuntimeError(f"too few samples after the warm-up: {samples}")
    first, last = counted[0][2], counted[-1][2]
    peak = max(s[2] for s in samples)
    growth = (last - first) / first
    rows = [
        (
            f"relay_outbox RSS over a drain of {drained:,} events ({wall:.0f}s, {drained / wall:,.0f} events/s)",
            f"{first / 2**20:.1f} MiB after {args.events - counted[0][1]:,} → {last / 2**20:.1f} MiB after "
            f"{args.events - counted[-1][1]:,}; peak {peak / 2**20:.1f} MiB",
            "flat",
            "",
        ),
        ("relay_outbox RSS growth", f"**{growth:+.1%}** ({load()})", "< 10%", "met" if growth < 0.10 else "missed"),
    ]
    if left:
        rows.append(("events left undrained", f"{left:,}", "0", "missed"))
    print_table(rows, t_start)
    return 0


def main() -> int:
    args = parse_args()
    config = Path(tempfile.mkdtemp(prefix="ws-relay-mem-")) / "workstream.yaml"
    config.write_text(json.dumps({"features": {"events": {"publish": True}}, "eventBus": {"exchange": EXCHANGE}}))
    os.environ["WORKSTREAM_CONFIG"] = str(config)  # JSON is YAML
    return bench_main(args, run)


if __name__ == "__main__":
    sys.exit(main())
