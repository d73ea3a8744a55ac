"""The relay's and the consumers' memory over a large drain (issue 13, target 6).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres REDIS_URL=redis://127.0.0.1:6379/15 \\
        .venv/bin/python bench/relay_memory.py --events 1000000 [--parts relay,notifications,commands]

Creates its own database (`ws_h_bench_relay_mem`, or --db) and migrates it, then per part
(--parts, all three by default) runs the process as deployed (its management command, default
options, a subprocess with the bench database's DATABASE_URL) and samples its RSS
(/proc/<pid>/statm) every --every seconds. Growth is measured from the first sample after
--warmup messages to the last, at the end of the drain. Target: flat, < 10 % growth. Drops the
database unless --keep; deletes its exchange, queues and Redis keys.

relay: fills the outbox with --events rows set-based (`INSERT … SELECT generate_series`: five
events per aggregate, the payload of a created item), declares its own exchange and a queue
bound to it that keeps only the newest 10,000 messages (so the broker does not hold the
drain), and runs `manage.py relay_outbox --until-empty --no-webhooks` (its default workers and
batch size), sampling it with the events left.

notifications: `manage.py consume_notifications` on its queue, bound to the bench's exchange
with the default binding (`#`: every event). The bench publishes --events messages to the
exchange as the relay does (`ConfirmingPublisher.publish_batch` of `relay.Row.message()`:
the same body, routing key, properties and headers), in batches of 500 with publisher
confirms, while the consumer drains, keeping the queue under --max-depth. The events are the
work-item lifecycle (created, claimed, started, completed; one event of 500 items per batch,
as the relay takes one event per aggregate per batch) with the full snapshot payload. Every
new event is real work for the consumer (parse, a Redis lookup, the `events_processedevent`
INSERT, the Redis key); --redeliveries (default 10 %) of each batch are the previous batch's
events again, as the relay resends a batch it did not see confirmed: those stop at the Redis
fast path (duplicate). The consumer ignores nothing else (no binding filters, no event type
it skips); bodies that are not envelopes would go to its DLQ, which producers never send.
It drained 220–330 messages/s here (load 1.5–10; 1.3–1.6 ms of its CPU a message, the rest
of the 3–4 ms waiting, mostly for each row's commit), so a million takes about an hour.

commands: `manage.py consume_commands` on its quorum queue. A real command is slow to execute
(each kind alone, 3,000 messages, this 2-CPU machine at load 1.5–5: an applied claim or release
26/s, 18 ms of the consumer's CPU each; a rejected one 38/s, 10 ms; a duplicate 805/s,
0.6 ms; an invalid one 217/s, 1.1 ms and the wait for its dead-letter's confirm), so a million
real commands would take 7–10 hours, and a million of any mix with real work in it more than
the half hour a run may take here. The stream is a mix (--command-mix, weights of the
messages; default applied=5, rejected=5, duplicate=70, invalid=20: 135–200 messages/s at load
1.5–7, a tenth of them executed), published to the default exchange with the queue name as routing key
(docs/events.md), persistent, in batches of 500 with publisher confirms, while it drains:
- applied: `claim` and then `release` of the same item by a worker of its queue's group
  (items seeded set-based, OFFERED, in a pull queue; each claim/release is a real transition:
  inbox row, item change, audit, the item's event and the command's outcome event);
- rejected: `complete` of an OFFERED item the actor does not hold (another set of items, never
  claimed): inbox row, the command runs and is refused, `command.rejected.v1`;
- duplicate: the last applied command's message again (same `command_id`): the Redis fast path;
- invalid: not JSON, an unknown command, no actor, a bad item_id in turn: parsed, refused, and
  dead-lettered with a confirmed publish to the DLQ (which the bench empties as it samples).
The last message is a rejected command whose inbox row tells the bench the drain is over.
Both consumers' outcomes are checked against what was sent (rows, DLQ count).

The consumers' logs go to a file in a temporary directory (the command consumer logs every
dead-letter at ERROR); the bench prints its tail if a consumer fails.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from claim_next import bench_main, make_users, print_table, seed_items, series_insert  # noqa: E402

RUN = uuid.uuid4().hex[:8]
EXCHANGE = f"bench.relaymem.{RUN}"
NAMES = {
    "exchange": EXCHANGE,
    "commandQueue": f"bench.relaymem.{RUN}.commands",
    "deadLetterQueue": f"bench.relaymem.{RUN}.commands.dlq",
    "notificationQueue": f"bench.relaymem.{RUN}.notifications",
    "notificationDeadLetterQueue": f"bench.relaymem.{RUN}.notifications.dlq",
}
PARTS = ("relay", "notifications", "commands")
KINDS = ("applied", "rejected", "duplicate", "invalid")
BATCH = 500  # messages per confirmed publish, as the relay's default batch


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--db", default="ws_h_bench_relay_mem", help="database to create (dropped first if it exists)")
    p.add_argument("--keep", action="store_true", help="keep the database afterwards")
    p.add_argument("--parts", default=",".join(PARTS), help="comma-separated: " + ", ".join(PARTS))
    p.add_argument("--events", type=int, default=1_000_000, help="events relayed / messages per consumer")
    p.add_argument("--warmup", type=int, default=20_000, help="messages handled before the first sample counts")
    p.add_argument("--every", type=float, default=5.0, help="seconds between samples")
    p.add_argument("--max-depth", type=int, default=20_000, help="consumers: publish while the queue holds fewer")
    p.add_argument("--redeliveries", type=float, default=0.10, help="notifications: share of events sent again")
    p.add_argument(
        "--command-mix",
        default="applied=5,rejected=5,duplicate=70,invalid=20",
        help="commands: shares (weights) of " + ", ".join(KINDS),
    )
    p.add_argument("--items", type=int, default=10_000, help="commands: items claimed and released in turn")
    args = p.parse_args()
    args.parts = [x.strip() for x in args.parts.split(",") if x.strip()]
    if unknown := set(args.parts) - set(PARTS):
        p.error(f"unknown parts: {', '.join(sorted(unknown))}")
    mix = dict(kv.split("=") for kv in args.command_mix.split(","))
    if set(mix) - set(KINDS):
        p.error(f"--command-mix: kinds are {', '.join(KINDS)}")
    args.command_mix = {k: float(mix.get(k, 0)) for k in KINDS}
    if not 0 <= args.redeliveries < 1:
        p.error("--redeliveries is a share in [0, 1)")
    return args


def load() -> str:
    return "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def rss(pid: int) -> int:
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def cpu_seconds(pid: int) -> float:
    """The process's user + system CPU time so far (/proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"


def growth_rows(name: str, what: str, counted: list, peak: int, loads: list[float]) -> list:
    """The two table rows of a process's RSS: first after the warm-up → last, peak; the growth."""
    first, last = counted[0], counted[-1]
    growth = (last["rss"] - first["rss"]) / first["rss"]
    load_range = f"load {min(loads):.1f}–{max(loads):.1f}" if loads else load()
    return [
        (
            f"`{name}` RSS over {what}",
            f"{mib(first['rss'])} after {first['done']:,} → {mib(last['rss'])} after {last['done']:,}; "
            f"peak {mib(peak)}",
            "flat",
            "",
        ),
        (f"`{name}` RSS growth", f"**{growth:+.1%}** ({load_range})", "< 10%", "met" if growth < 0.10 else "missed"),
    ]


# --- relay ------------------------------------------------------------------------------------


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


def run_relay(args, bench_url: str) -> list:
    from django.conf import settings
    from django.db import connection, connections
    from kombu import Connection

    queue = f"{EXCHANGE}.sink"
    print(f"relay: filling the outbox with {args.events:,} events … ({load()})", flush=True)
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
    left = pending()
    drained = args.events - left
    with connection.cursor() as cur:  # the consumers' parts do not need the relay's million rows
        cur.execute("TRUNCATE events_outboxevent")
    counted = [{"done": args.events - s[1], "rss": s[2]} for s in samples if args.events - s[1] >= args.warmup]
    if len(counted) < 2:
        raise RuntimeError(f"relay: too few samples after the warm-up: {samples}")
    rows = growth_rows(
        "relay_outbox",
        f"a drain of {drained:,} events ({wall:.0f}s, {drained / wall:,.0f} events/s)",
        counted,
        max(s[2] for s in samples),
        [],
    )
    if left:
        rows.append(("events left undrained", f"{left:,}", "0", "missed"))
    return rows


# --- consumers: publishing and sampling -------------------------------------------------------


class DefaultExchangePublisher:
    """Persistent messages to the default exchange (routing key = queue), a batch at a time with
    publisher confirms: what a producer of commands does (docs/events.md, "Inbound commands")."""

    def __init__(self, url: str, queue: str):
        from events import bus

        self.queue = queue
        self.conn = bus.connection(url, heartbeat=0)  # idle while the queue is full: no heartbeats to miss
        self.conn.connect()
        self.channel = self.conn.channel()
        self.channel.confirm_select()
        self.channel.events["basic_ack"].add(self._ack)
        self.channel.events["basic_nack"].add(self._nack)
        self.next_tag = 1
        self.pending: set[int] = set()
        self.nacked = 0

    def _ack(self, tag: int, multiple: bool, nack: bool = False) -> None:
        settled = {t for t in self.pending if t <= tag} if multiple else {tag} & self.pending
        self.pending -= settled
        if nack:
            self.nacked += len(settled)

    def _nack(self, tag: int, multiple: bool) -> None:
        self._ack(tag, multiple, nack=True)

    def publish_batch(self, bodies: list[bytes]) -> None:
        import amqp

        for body in bodies:
            msg = amqp.Message(body, delivery_mode=2, content_type="application/json")
            self.channel.basic_publish(msg, exchange="", routing_key=self.queue)
            self.pending.add(self.next_tag)
            self.next_tag += 1
        deadline = time.monotonic() + 30
        while self.pending:
            if time.monotonic() > deadline:
                raise RuntimeError(f"no confirm for {len(self.pending)} command(s) in 30s")
            try:
                self.conn.drain_events(timeout=1)
            except TimeoutError:
                continue
        if self.nacked:
            raise RuntimeError(f"the broker nacked {self.nacked} command(s)")

    def heartbeat(self) -> None:
        pass

    def close(self) -> None:
        self.conn.release()


def start_consumer(command: str, bench_url: str, log_path: Path) -> subprocess.Popen:
    from django.db import connections

    connections.close_all()  # nothing of ours holds a transaction while it runs
    cmd = [sys.executable, str(HERE.parent / "manage.py"), command]
    with log_path.open("ab") as log:
        return subprocess.Popen(  # noqa: S603
            cmd, env=dict(os.environ, DATABASE_URL=bench_url), stdout=log, stderr=subprocess.STDOUT
        )


def stop_consumer(proc: subprocess.Popen, log_path: Path) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if proc.returncode not in (0, -signal.SIGTERM):
        tail = log_path.read_text(errors="replace").splitlines()[-20:]
        print("\n".join(["  consumer log (tail):", *tail]), flush=True)


def drain(
    args,
    *,
    name: str,
    proc: subprocess.Popen,
    queue: str,
    batches: Iterator[list],
    publish: Callable[[list], None],
    idle: Callable[[], None],
    finished: Callable[[], bool],
    on_sample: Callable[[], str] | None = None,
) -> tuple[list[dict], float, int]:
    """Publish `batches` while the consumer drains (the queue kept under --max-depth), sample its
    RSS and the queue depth every --every seconds, and return (samples, seconds, published) once
    everything is published, the queue is empty and `finished()` (the last message handled)."""
    from django.conf import settings
    from kombu import Connection

    samples: list[dict] = []
    with Connection(settings.AMQP_URL, heartbeat=0) as conn:
        ch = conn.channel()

        def depth() -> tuple[int, int]:
            ok = ch.queue_declare(queue, passive=True)
            return ok.message_count, ok.consumer_count

        deadline = time.monotonic() + 120
        while depth()[1] == 0:  # the consumer is up and subscribed: the clock starts
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not start consuming {queue}")
            time.sleep(0.2)
        t0, cpu0 = time.perf_counter(), cpu_seconds(proc.pid)
        next_sample = t0 + args.every
        published, exhausted = 0, False
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode} during the drain")
            now = time.perf_counter()
            end = exhausted and depth()[0] == 0 and finished()
            if now >= next_sample or end:
                ready = depth()[0]
                try:
                    now_rss, cpu = rss(proc.pid), cpu_seconds(proc.pid) - cpu0
                except (OSError, IndexError, ValueError):
                    now_rss, cpu = 0, 0.0
                extra = on_sample() if on_sample else ""
                sample = {"t": now - t0, "done": published - ready, "rss": now_rss, "cpu": cpu}
                sample["load"] = os.getloadavg()[0]
                samples.append(sample)
                print(
                    f"  {sample['t']:.0f}s: {published:,} published, {ready:,} queued, RSS {mib(now_rss)}, "
                    f"CPU {cpu:.0f}s{extra}; {load()}",
                    flush=True,
                )
                next_sample = now + args.every
                if end:
                    return samples, now - t0, published
            if not exhausted and depth()[0] < args.max_depth:
                batch = next(batches, None)
                if batch is None:
                    exhausted = True
                    continue
                publish(batch)
                published += len(batch)
            else:
                idle()
                time.sleep(0.1)


def consumer_rows(args, name: str, samples: list[dict], wall: float, published: int, mix: str) -> list:
    counted = [s for s in samples if s["done"] >= args.warmup]
    if len(counted) < 2:
        raise RuntimeError(f"{name}: too few samples after the warm-up: {samples}")
    cpu = samples[-1]["cpu"]
    return growth_rows(
        name,
        f"a drain of {published:,} messages ({wall:.0f}s, {published / wall:,.0f} messages/s, "
        f"{cpu / published * 1000:.2f} ms of its CPU a message; {mix})",
        counted,
        max(s["rss"] for s in samples),
        [s["load"] for s in samples],
    )


def delete_keys(pattern: str) -> int:
    """Delete the Redis keys of this run (the consumers' fast-path keys) by pattern."""
    from events.wakeup import redis_client

    client, n = redis_client(), 0
    keys = client.scan_iter(match=pattern, count=10_000)
    while chunk := list(itertools.islice(keys, 10_000)):
        n += client.unlink(*chunk)
    return n


def delete_queues(*queues: str, exchange: str | None = None) -> None:
    from django.conf import settings
    from kombu import Connection

    with Connection(settings.AMQP_URL) as conn:
        ch = conn.channel()
        for q in queues:
            ch.queue_delete(q)
        if exchange:
            ch.exchange_delete(exchange)


# --- notifications ----------------------------------------------------------------------------

STAGES = (  # (event, action, from state, to state): a work item's lifecycle
    ("created", "create", "", "OFFERED"),
    ("claimed", "claim", "OFFERED", "ASSIGNED"),
    ("started", "start", "ASSIGNED", "IN_PROGRESS"),
    ("completed", "complete", "IN_PROGRESS", "COMPLETED"),
)


def event_id(n: int) -> str:
    """The n-th event's id: this run's prefix, so its Redis keys can be found afterwards."""
    return f"{RUN}-0000-4000-8000-{n:012x}"


def lifecycle_event(n: int):
    """The n-th new event as the relay reads it from the outbox (`relay.Row`): 500 items per
    round of batches, each batch one event of each of them, the stages in order."""
    from events.relay import Row

    rnd, pos = divmod(n, BATCH)
    item_id = (rnd // len(STAGES)) * BATCH + pos + 1
    stage = rnd % len(STAGES)
    name, action, from_state, to_state = STAGES[stage]
    now = datetime.now(UTC)
    stamp = now.isoformat().replace("+00:00", "Z")
    assignee = f"worker-{item_id % 200:03d}" if stage else None
    item = {
        "id": item_id,
        "workflow_id": f"claims-{item_id}",
        "run_id": f"run-{item_id}",
        "task_name": "review-claim",
        "title": f"Review claim {item_id}",
        "queue": "claims",
        "priority": item_id % 101,
        "state": to_state,
        "sub_status": "",
        "assignee": assignee,
        "reserved_for": None,
        "reserved_until": None,
        "version": stage + 1,
        "escalation_level": 0,
        "sla_state": "",
        "breached_at": None,
        "due_at": None,
        "follow_up_at": None,
        "context_data": {"claim_id": item_id, "amount": 1200 + item_id % 900, "currency": "EUR"},
        "result": {"approved": True} if stage == 3 else None,
        "outcome_reason": "",
        "outcome": "",
        "optional": False,
        "department": "",
        "sod_key": "",
        "sod_scope": "",
        "case": None,
        "callback_url": None,
        "correlation_id": f"claim-{item_id}",
        "created_at": stamp,
        "updated_at": stamp,
        "assigned_at": stamp if stage else None,
        "started_at": stamp if stage >= 2 else None,
        "completed_at": stamp if stage == 3 else None,
        "closed_at": stamp if stage == 3 else None,
    }
    transition = {"action": action, "from_state": from_state, "to_state": to_state, "actor": assignee or "svc"}
    return Row(
        id=n + 1,
        event_id=event_id(n),
        event_type=f"workitem.{name}.v1",
        aggregate_type="workitem",
        aggregate_id=str(item_id),
        sequence=stage + 1,
        occurred_at=now,
        producer="workstream",
        trace_id=f"req-{item_id}-{stage}",
        correlation_id=f"claim-{item_id}",
        payload_text=json.dumps({"work_item": item, "transition": transition}, separators=(",", ":")),
        attempts=0,
        callback_url=None,
        traceparent="",
    )


def notification_batches(total: int, share: float, counts: dict) -> Iterator[list]:
    """Batches of the relay's messages: each begins with `share` of the previous batch again."""
    new, previous, sent = 0, [], 0
    while sent < total:
        size = min(BATCH, total - sent)
        again = previous[: min(round(size * share), len(previous), size - 1)]
        fresh = [lifecycle_event(new + i).message() for i in range(size - len(again))]
        new += len(fresh)
        counts["new"], counts["again"] = new, counts["again"] + len(again)
        counts["last"] = new - 1
        previous = fresh
        sent += size
        yield again + fresh


def run_notifications(args, bench_url: str, logs: Path) -> list:
    from django.conf import settings
    from kombu import Connection

    from events import bus
    from events.models import ProcessedEvent

    queue, dlq = NAMES["notificationQueue"], NAMES["notificationDeadLetterQueue"]
    t = time.perf_counter()
    lifecycle_event(0).message()
    print(f"notifications: {args.events:,} messages to {queue} ({load()})", flush=True)
    with Connection(settings.AMQP_URL) as conn:  # before the first publish: nothing is unroutable
        bus.declare_notification_queue(
            conn.channel(), exchange=EXCHANGE, queue=queue, bindings=["#"], dead_letter_queue=dlq
        )
    counts = {"new": 0, "again": 0, "last": -1}
    log_path = logs / "consume_notifications.log"
    proc = start_consumer("consume_notifications", bench_url, log_path)
    publisher = bus.ConfirmingPublisher(exchange=EXCHANGE)
    try:
        publisher.connect()

        def publish(batch):
            if any(publisher.publish_batch(batch)):
                raise RuntimeError("the broker nacked events")

        def finished():
            return ProcessedEvent.objects.filter(event_id=event_id(counts["last"])).exists()

        samples, wall, published = drain(
            args,
            name="consume_notifications",
            proc=proc,
            queue=queue,
            batches=notification_batches(args.events, args.redeliveries, counts),
            publish=publish,
            idle=publisher.heartbeat,
            finished=finished,
        )
    finally:
        publisher.close()
        stop_consumer(proc, log_path)
        with Connection(settings.AMQP_URL) as conn:
            left = conn.channel().queue_declare(queue, passive=True).message_count
            dead = conn.channel().queue_declare(dlq, passive=True).message_count
        recorded = ProcessedEvent.objects.count()
        delete_queues(queue, dlq)
        keys = delete_keys(f"workstream:processed:{RUN}-*")
        print(f"  cleaned up: queues {queue}, {dlq}; {keys:,} Redis keys ({time.perf_counter() - t:.0f}s)")
    mix = f"{counts['new']:,} new events, {counts['again']:,} sent again ({counts['again'] / published:.0%})"
    rows = consumer_rows(args, "consume_notifications", samples, wall, published, mix)
    ok = recorded == counts["new"] and not left and not dead
    rows.append(
        (
            "`consume_notifications` outcomes",
            f"{recorded:,} events recorded (rows), {dead:,} dead-lettered, {left:,} left in the queue",
            f"{counts['new']:,}, 0, 0",
            "met" if ok else "missed",
        )
    )
    return rows


# --- commands ---------------------------------------------------------------------------------

POISON = (
    lambda cid: b"{not json " + cid.encode(),
    lambda cid: json.dumps({"command_id": cid, "command": "teleport", "actor": "w00000", "item_id": 1}).encode(),
    lambda cid: json.dumps({"command_id": cid, "command": "claim", "item_id": 1}).encode(),
    lambda cid: json.dumps({"command_id": cid, "command": "claim", "actor": "w00000", "item_id": "one"}).encode(),
)


def pattern(mix: dict[str, float], length: int = 100) -> list[str]:
    """`length` kinds in the shares of `mix`, spread out (the largest remainder first, in turn)."""
    total = sum(mix.values())
    out, credit = [], dict.fromkeys(mix, 0.0)
    for _ in range(length):
        for k in mix:
            credit[k] += mix[k] / total
        kind = max(credit, key=credit.get)
        credit[kind] -= 1
        out.append(kind)
    return out


def seed_commands(args) -> dict:
    from django.contrib.auth.models import Group

    from workitems.models import Queue, WorkItem

    group = Group.objects.create(name="bench-cm-workers")
    workers = make_users("w", 200, groups=[group])
    queue = Queue.objects.create(name="bench-cm")
    queue.candidate_groups.add(group)
    seed_items(queue, args.items + 1000)
    ids = list(WorkItem.objects.filter(queue=queue).order_by("id").values_list("id", flat=True))
    return {"workers": [u.username for u in workers], "claimable": ids[: args.items], "refusable": ids[args.items :]}


def command_stream(total: int, mix: dict[str, float], seeded: dict, counts: dict) -> Iterator[bytes]:
    kinds = pattern(mix)
    workers, claimable, refusable = seeded["workers"], seeded["claimable"], seeded["refusable"]
    applied, last_applied = 0, None
    for i in range(total):
        cid = f"{RUN}-{i}" if i < total - 1 else f"{RUN}-end"
        kind = kinds[i % len(kinds)] if i < total - 1 else "rejected"
        if kind == "duplicate" and last_applied is None:
            kind = "applied"
        counts[kind] += 1
        if kind == "applied":
            item = claimable[(applied // 2) % len(claimable)]
            cmd = {
                "command_id": cid,
                "command": "claim" if applied % 2 == 0 else "release",
                "actor": workers[item % len(workers)],
                "item_id": item,
                "correlation_id": f"corr-{cid}",
            }
            applied += 1
            last_applied = json.dumps(cmd).encode()
            yield last_applied
        elif kind == "rejected":
            item = refusable[i % len(refusable)]
            cmd = {"command_id": cid, "command": "complete", "actor": workers[i % len(workers)], "item_id": item}
            yield json.dumps({**cmd, "result": {"approved": True}, "correlation_id": f"corr-{cid}"}).encode()
        elif kind == "duplicate":
            yield last_applied
        else:
            yield POISON[i % len(POISON)](cid)


def run_commands(args, bench_url: str, logs: Path) -> list:
    from django.conf import settings
    from django.db.models import Count
    from kombu import Connection

    from events import bus
    from events.models import InboxCommand

    queue, dlq = NAMES["commandQueue"], NAMES["deadLetterQueue"]
    t = time.perf_counter()
    print(f"commands: seeding {args.items + 1000:,} items, 200 workers … ({load()})", flush=True)
    seeded = seed_commands(args)
    print(f"commands: {args.events:,} messages to {queue} ({load()})", flush=True)
    with Connection(settings.AMQP_URL) as conn:
        bus.declare_command_queues(conn.channel(), queue=queue, dead_letter_queue=dlq)
    counts = dict.fromkeys(KINDS, 0)
    dead = [0]
    log_path = logs / "consume_commands.log"
    proc = start_consumer("consume_commands", bench_url, log_path)
    publisher = DefaultExchangePublisher(settings.AMQP_URL, queue)
    stream = command_stream(args.events, args.command_mix, seeded, counts)
    purger = Connection(settings.AMQP_URL, heartbeat=0)
    try:
        purge_ch = purger.channel()

        def purge_dlq() -> str:  # the DLQ is the broker's to hold; counted, then emptied
            dead[0] += purge_ch.queue_purge(dlq) or 0
            return f", {dead[0]:,} dead-lettered"

        def finished():
            return InboxCommand.objects.filter(command_id=f"{RUN}-end").exclude(outcome="").exists()

        samples, wall, published = drain(
            args,
            name="consume_commands",
            proc=proc,
            queue=queue,
            batches=iter(lambda: list(itertools.islice(stream, BATCH)) or None, None),
            publish=publisher.publish_batch,
            idle=publisher.heartbeat,
            finished=finished,
            on_sample=purge_dlq,
        )
    finally:
        publisher.close()
        stop_consumer(proc, log_path)
        with Connection(settings.AMQP_URL) as conn:
            left = conn.channel().queue_declare(queue, passive=True).message_count
            dead[0] += conn.channel().queue_purge(dlq) or 0
        purger.release()
        outcomes = dict(InboxCommand.objects.values_list("outcome").annotate(n=Count("id")))
        delete_queues(queue, dlq)
        keys = delete_keys(f"workstream:command:{RUN}-*")
        print(f"  cleaned up: queues {queue}, {dlq}; {keys:,} Redis keys ({time.perf_counter() - t:.0f}s)")
    mix = ", ".join(f"{counts[k]:,} {k}" for k in KINDS)
    rows = consumer_rows(args, "consume_commands", samples, wall, published, mix)
    got = (outcomes.get("applied", 0), outcomes.get("rejected", 0), dead[0], left)
    want = (counts["applied"], counts["rejected"], counts["invalid"], 0)
    rows.append(
        (
            "`consume_commands` outcomes",
            f"{got[0]:,} applied, {got[1]:,} rejected (inbox rows), {got[2]:,} dead-lettered, {got[3]:,} left",
            ", ".join(f"{n:,}" for n in want),
            "met" if got == want else "missed",
        )
    )
    return rows


def run(args, bench_url: str, t_start: float) -> int:
    rows: list = []
    logs = Path(tempfile.mkdtemp(prefix="ws-relay-mem-logs-"))
    try:
        if "relay" in args.parts:
            rows += run_relay(args, bench_url)
        if "notifications" in args.parts:
            rows += run_notifications(args, bench_url, logs)
        if "commands" in args.parts:
            rows += run_commands(args, bench_url, logs)
    finally:
        delete_queues(exchange=EXCHANGE)
    print_table(rows, t_start)
    return 0


def main() -> int:
    args = parse_args()
    config = Path(tempfile.mkdtemp(prefix="ws-relay-mem-")) / "workstream.yaml"
    config.write_text(
        json.dumps(
            {
                "features": {"events": {"publish": True, "subscribe": True}},
                "eventBus": NAMES,
                # A commit (an applied command's) wakes a relay process over Redis pub/sub, as a
                # deployment with `relay_outbox` does; none runs here: the outbox just fills.
                "relay": {"nudge": "process"},
            }
        )
    )
    os.environ["WORKSTREAM_CONFIG"] = str(config)  # JSON is YAML
    return bench_main(args, run)


if __name__ == "__main__":
    sys.exit(main())
