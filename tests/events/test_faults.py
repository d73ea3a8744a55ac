"""Fault tests with the real services: kill -9 the relay, take the broker away, roll writes back.

The relay runs as `manage.py relay_outbox` subprocesses here, pointed at this
test's database (transactional_db commits, so a separate process sees the rows)
and at this test's exchange through WORKSTREAM_CONFIG.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import threading
import time
from collections import defaultdict

import pytest
from django.db import transaction
from django.utils import timezone
from rest_framework.test import APIClient

from events import relay
from events.bus import ConfirmingPublisher
from events.models import OutboxEvent
from events.nudge import redis_client, relay_channel
from tests.events.conftest import manage_py, subprocess_env
from workitems import services

pytestmark = pytest.mark.django_db(transaction=True)


def _payload(aggregate: int, seq: int) -> dict:
    return {
        "work_item": {
            "id": aggregate,
            "workflow_id": f"wf-{aggregate}",
            "task_name": "review",
            "queue": "crash",
            "state": "OFFERED",
            "version": seq,
            "context_data": {"claim": aggregate, "note": "x" * 300},
        },
        "transition": {"action": "escalate", "from_state": "OFFERED", "to_state": "OFFERED", "actor": None},
    }


def _fill_outbox(aggregates: int, per_aggregate: int, seed: int) -> dict[str, tuple[str, int]]:
    """Insert aggregates × per_aggregate events, interleaved at random but in order within each aggregate."""
    rng = random.Random(seed)
    remaining = {a: 1 for a in range(1, aggregates + 1)}
    order = []
    live = list(remaining)
    while live:
        i = rng.randrange(len(live))
        a = live[i]
        order.append((a, remaining[a]))
        remaining[a] += 1
        if remaining[a] > per_aggregate:
            live[i] = live[-1]
            live.pop()
    now = timezone.now()
    rows = [
        OutboxEvent(
            event_type="workitem.escalated.v1",
            aggregate_id=str(a),
            sequence=s,
            occurred_at=now,
            producer="workstream",
            payload=_payload(a, s),
        )
        for a, s in order
    ]
    OutboxEvent.objects.bulk_create(rows, batch_size=2000)
    return {str(r.event_id): (r.aggregate_id, r.sequence) for r in rows}


def _analyse(received: list[tuple[bytes, dict]], expected: dict[str, tuple[str, int]]) -> dict:
    by_id: dict[str, list[bytes]] = defaultdict(list)
    last_seq: dict[str, int] = {}
    inversions = 0
    mismatched = 0
    for body, _headers in received:
        env = json.loads(body)
        eid = env["event_id"]
        by_id[eid].append(body)
        agg, seq = str(env["payload"]["work_item"]["id"]), env["sequence"]
        if expected.get(eid) != (agg, seq):
            mismatched += 1  # an event id that is not the one written for (aggregate, sequence)
        if seq < last_seq.get(agg, 0):
            inversions += 1
        last_seq[agg] = max(seq, last_seq.get(agg, 0))
    duplicates = sum(len(v) - 1 for v in by_id.values())
    dup_bodies_differ = sum(1 for v in by_id.values() if len(set(v)) > 1)
    return {
        "written": len(expected),
        "received": len(received),
        "distinct": len(by_id),
        "lost": len(set(expected) - set(by_id)),
        "unknown": len(set(by_id) - set(expected)),
        "duplicates": duplicates,
        "duplicates_with_different_body": dup_bodies_differ,
        "mismatched_ids": mismatched,
        "inversions": inversions,
    }


def _unpublished() -> int:
    return OutboxEvent.objects.filter(published_at__isnull=True).count()


@pytest.mark.slow
def test_kill_9_the_relay_20_times_during_a_10000_event_drain(events_config, tap, names):
    seed = int(os.environ.get("WS_CRASH_SEED", random.randrange(1 << 30)))
    rng = random.Random(seed)
    _, path = events_config({"relay": {"nudge": "none", "pollSeconds": 0.2}, "performance": {"outboxBatchSize": 250}})
    t = tap()
    expected = _fill_outbox(aggregates=1000, per_aggregate=10, seed=seed)
    env = subprocess_env(path)
    cmd = [*manage_py(), "relay_outbox", "--no-webhooks"]
    kills = kills_mid_drain = 0
    t0 = time.monotonic()
    while kills < 20:
        backlog_before = _unpublished()
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            if rng.random() < 0.2:
                # somewhere in start-up / connect / the first batch: a random moment, but no later
                # than the first batch's commit (a relay that starts fast would otherwise drain
                # thousands before this kill, and the later kills find nothing left)
                until = time.monotonic() + rng.uniform(0, 1.5)
                while time.monotonic() < until and _unpublished() == backlog_before:
                    time.sleep(0.005)
            else:
                # once this incarnation has committed a batch, kill it at a random point after
                deadline = time.monotonic() + 20
                while time.monotonic() < deadline and _unpublished() == backlog_before and backlog_before:
                    time.sleep(0.005)
                # short pauses, longer only while far more is left than the remaining kills need:
                # a relay that publishes ~10k events/s drains ~1,000 in 0.1 s
                left = max(20 - kills, 1)
                time.sleep(rng.uniform(0, 0.05 if _unpublished() > left * 600 else 0.01))
            mid = _unpublished() > 0
        finally:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        kills += 1
        kills_mid_drain += mid
    # one more incarnation finishes the drain
    done = subprocess.run([*cmd, "--until-empty"], env=env, capture_output=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert _unpublished() == 0
    received = t.consume_all(expect=len(expected), timeout=60)
    figures = _analyse(received, expected)
    figures.update(kills=kills, kills_mid_drain=kills_mid_drain, seed=seed, seconds=round(time.monotonic() - t0, 1))
    print(f"\ncrash test: {json.dumps(figures)}")
    assert figures["lost"] == 0
    assert figures["unknown"] == 0 and figures["mismatched_ids"] == 0
    assert figures["duplicates_with_different_body"] == 0  # a duplicate is the same event, same event_id
    assert figures["inversions"] == 0
    assert kills == 20 and kills_mid_drain >= 15, figures
    assert OutboxEvent.objects.filter(dead_lettered_at__isnull=False).count() == 0


class FlakyProxy:
    """A TCP proxy in front of RabbitMQ that can go away (connection refused, live connections cut)."""

    def __init__(self, target=("127.0.0.1", 5672)):
        self.target = target
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = probe.getsockname()[1]
        probe.close()
        self.conns: list[socket.socket] = []
        self.lock = threading.Lock()
        self.listener: socket.socket | None = None
        self.up()

    def up(self) -> None:
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", self.port))
        self.listener.listen(16)
        threading.Thread(target=self._accept, args=(self.listener,), daemon=True).start()

    def down(self) -> None:
        listener, self.listener = self.listener, None
        if listener is not None:
            with contextlib.suppress(OSError):  # shutdown wakes the accept(); close alone does not, on Linux
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        with self.lock:
            for s in self.conns:
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()
            self.conns.clear()

    def _accept(self, listener) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src, dst) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.close()

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}//"


@pytest.mark.slow
def test_broker_outage_the_api_keeps_accepting_and_nothing_is_lost(events_config, tap, names, svc, queue):
    outage = float(os.environ.get("WS_OUTAGE_SECONDS", "30"))
    _, path = events_config({"relay": {"nudge": "process", "pollSeconds": 0.5}})
    t = tap()
    proxy = FlakyProxy()
    proc = subprocess.Popen(
        [*manage_py(), "relay_outbox", "--no-webhooks"],
        env=subprocess_env(path, AMQP_URL=proxy.url),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    api = APIClient()
    api.force_authenticate(svc)
    created: list[int] = []

    def create(n: int, pause: float) -> None:
        for _ in range(n):
            r = api.post(
                "/api/v1/workitems", {"workflow_id": "wf-out", "task_name": "t", "queue": queue.name}, format="json"
            )
            assert r.status_code == 201, r.content
            created.append(r.json()["id"])
            time.sleep(pause)

    try:
        create(100, 0.01)
        deadline = time.monotonic() + 30
        while _unpublished() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _unpublished() == 0, "the relay did not drain before the outage"
        proxy.down()
        t_down = time.monotonic()
        backlog = []
        while time.monotonic() - t_down < outage:
            create(10, 0.02)  # the API keeps accepting writes...
            backlog.append(_unpublished())
        assert backlog[-1] >= len(created) - 100 - 10  # ...and the backlog grows: nothing goes out
        assert backlog == sorted(backlog)
        proxy.up()
        t_up = time.monotonic()
        deadline = t_up + 60
        while _unpublished() and time.monotonic() < deadline:
            time.sleep(0.1)
        drained_after = time.monotonic() - t_up
        assert _unpublished() == 0, "the backlog did not drain after the broker came back"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        proxy.down()
    expected = {str(e): (a, s) for e, a, s in OutboxEvent.objects.values_list("event_id", "aggregate_id", "sequence")}
    received = t.consume_all(expect=len(expected), timeout=30)
    figures = _analyse(received, expected)
    figures.update(
        outage_seconds=outage, writes=len(created), peak_backlog=max(backlog), drained_in=round(drained_after, 1)
    )
    print(f"\nbroker outage: {json.dumps(figures)}")
    assert figures["lost"] == 0 and figures["inversions"] == 0 and figures["unknown"] == 0
    assert len(created) == len(set(created)) == figures["distinct"]


@pytest.mark.slow
def test_1000_rolled_back_writes_produce_no_events(events_config, tap, names, svc, alice, queue):
    """Writes forced to roll back (after the service wrote its outbox row) leave nothing to publish."""
    events_config({"relay": {"nudge": "process"}})
    t = tap()
    kept = services.work_item_create(
        actor=svc, data={"workflow_id": "wf-kept", "task_name": "t", "queue": queue.name}
    )  # the control: one committed event
    baseline = OutboxEvent.objects.count()
    sub = redis_client().pubsub(ignore_subscribe_messages=True)
    sub.subscribe(relay_channel())

    class Rollback(Exception):
        pass

    rolled_back = 0
    for i in range(1000):
        try:
            with transaction.atomic():
                if i % 10 == 0:  # creates, and the cheaper transitions on the kept item
                    services.work_item_create(
                        actor=svc, data={"workflow_id": f"wf-rb-{i}", "task_name": "t", "queue": queue.name}
                    )
                elif i % 2:
                    services.work_item_claim(item_id=kept.pk, actor=alice)
                else:
                    services.work_item_escalate(item_id=kept.pk, actor=None, reason="rolled back")
                assert OutboxEvent.objects.count() == baseline + 1  # the row exists inside the transaction
                raise Rollback
        except Rollback:
            rolled_back += 1
    assert rolled_back == 1000
    assert OutboxEvent.objects.count() == baseline
    nudges, deadline = 0, time.monotonic() + 0.5
    while time.monotonic() < deadline:  # (None is also what the subscribe ack reads as)
        nudges += sub.get_message(timeout=0.1) is not None
    sub.close()
    assert nudges == 0  # no commit, no nudge
    pub = ConfirmingPublisher(exchange=names["exchange"])
    try:
        assert relay.relay_drain(pub) == baseline
    finally:
        pub.close()
    events = t.drain(expect=baseline, timeout=5)
    assert [e["payload"]["work_item"]["workflow_id"] for e, _ in events] == ["wf-kept"]
    assert not OutboxEvent.objects.filter(published_at__isnull=True).exists()
