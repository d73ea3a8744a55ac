"""The relay against the real broker: envelope, confirms, order, retries, dead letters, modes."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.db import transaction
from kombu import Connection

from events import relay
from events.bus import BrokerUnavailable, ConfirmingPublisher
from events.models import OutboxEvent
from events.outbox import outbox_enqueue
from workitems import services

pytestmark = pytest.mark.django_db(transaction=True)


def _publisher(names, **kw):
    return ConfirmingPublisher(exchange=names["exchange"], **kw)


def test_published_with_full_envelope_and_properties(events_config, tap, names, make_item, alice):
    events_config({"relay": {"nudge": "none"}})
    t = tap("workitem.#")
    item = make_item(correlation_id="corr-1")
    services.work_item_claim(item_id=item.pk, actor=alice)
    pub = _publisher(names)
    try:
        assert relay.relay_drain(pub) == 2
    finally:
        pub.close()
    got = t.drain(expect=2)
    assert [env["event_type"] for env, _ in got] == ["workitem.created.v1", "workitem.claimed.v1"]
    rows = list(OutboxEvent.objects.order_by("id"))
    for (env, msg), row in zip(got, rows, strict=True):
        assert env == row.envelope()  # byte-for-byte the documented envelope
        assert set(env) == {
            "event_id",
            "event_type",
            "occurred_at",
            "producer",
            "trace_id",
            "correlation_id",
            "sequence",
            "payload",
        }
        assert msg.properties["delivery_mode"] == 2
        assert msg.properties["message_id"] == env["event_id"]
        assert msg.properties["content_type"] == "application/json"
        assert msg.delivery_info["routing_key"] == env["event_type"]
        assert msg.headers["aggregate_id"] == str(item.pk)
        assert row.published_at is not None
    assert got[0][0]["correlation_id"] == "corr-1"
    assert got[1][0]["payload"]["transition"]["to_state"] == "ASSIGNED"
    assert got[1][0]["sequence"] == 2


def test_one_event_per_aggregate_per_batch_keeps_item_order(events_config, tap, names, make_item, alice):
    events_config({"relay": {"nudge": "none"}})
    t = tap()
    a = make_item()
    services.work_item_claim(item_id=a.pk, actor=alice)
    services.work_item_start(item_id=a.pk, actor=alice)
    b = make_item()
    pub = _publisher(names)
    try:
        first = relay.relay_batch(pub)
        # item a's later events wait for its first to be confirmed; b's head goes along
        assert first.published == 2
        assert relay.relay_drain(pub) == 2
    finally:
        pub.close()
    seqs = [(env["payload"]["work_item"]["id"], env["sequence"]) for env, _ in t.drain(expect=4)]
    assert seqs == [(a.pk, 1), (b.pk, 1), (a.pk, 2), (a.pk, 3)]


def test_a_locked_head_blocks_its_successors_for_a_second_relay(events_config, tap, names, make_item, alice):
    """Two relays: while one holds an item's event #1, the other must not take #2."""
    events_config({"relay": {"nudge": "none"}})
    item = make_item()
    services.work_item_claim(item_id=item.pk, actor=alice)
    import threading

    from django.db import connection

    held = threading.Event()
    release = threading.Event()
    taken_by_other: list = []

    def first_relay():
        try:
            with transaction.atomic():
                rows = relay.fetch_batch(1)
                assert [r.sequence for r in rows] == [1]
                held.set()
                release.wait(10)
        finally:
            connection.close()

    th = threading.Thread(target=first_relay)
    th.start()
    assert held.wait(10)
    with transaction.atomic():
        taken_by_other = relay.fetch_batch(10)
    release.set()
    th.join()
    assert taken_by_other == []  # #1 is locked (skipped), #2 is not a head: nothing to take


def test_rows_are_written_but_nothing_sent_when_publishing_is_off(events_config, tap, names, make_item):
    events_config({"features": {"events": {"publish": False}}})
    t = tap()
    make_item()
    assert OutboxEvent.objects.filter(published_at__isnull=True).count() == 1
    from events import tasks

    assert tasks.relay_outbox.apply().get() == 0
    with pytest.raises(Exception, match="publish is off"):
        call_command("relay_outbox", "--until-empty")
    assert t.drain(timeout=0.5) == []
    # turning publishing on later loses nothing
    events_config({"relay": {"nudge": "none"}})
    pub = _publisher(names)
    try:
        assert relay.relay_drain(pub) == 1
    finally:
        pub.close()


def test_nacked_events_are_retried_then_dead_lettered_and_replayable(events_config, tap, names, make_item):
    """A full queue with reject-publish makes the broker nack: attempts, backoff, dead letter, replay."""
    events_config({"relay": {"nudge": "none"}, "eventBus": {"maxPublishAttempts": 3}})
    with Connection("amqp://guest:guest@127.0.0.1:5672//") as conn:
        ch = conn.channel()
        ch.exchange_declare(names["exchange"], "topic", durable=True, auto_delete=False)
        full = f"{names['tap']}.full"
        ch.queue_declare(
            full,
            durable=True,
            auto_delete=False,
            arguments={"x-max-length": 0, "x-overflow": "reject-publish", "x-expires": 600_000},
        )
        ch.queue_bind(full, names["exchange"], "#")
        try:
            item = make_item()
            pub = _publisher(names)
            try:
                import time

                for expected_attempts in (1, 2, 3):
                    deadline = time.monotonic() + 5
                    while time.monotonic() < deadline:
                        result = relay.relay_batch(pub)
                        if result.taken:
                            break
                        time.sleep(0.05)
                    assert result.failed == 1
                    ev = OutboxEvent.objects.get()
                    assert ev.attempts == expected_attempts and ev.published_at is None
                    assert "nack" in ev.last_error
                assert ev.dead_lettered_at is not None
                assert relay.relay_batch(pub).taken == 0  # dead letters are out of line
                ch.queue_delete(full)
                call_command("replay_dead_events")
                assert relay.relay_drain(pub) == 1
            finally:
                pub.close()
            ev = OutboxEvent.objects.get()
            assert ev.published_at is not None and ev.dead_lettered_at is None
            assert ev.aggregate_id == str(item.pk)
        finally:
            ch.queue_delete(full)


def test_unreachable_broker_raises_without_touching_rows(events_config, make_item):
    events_config({"relay": {"nudge": "none"}})
    make_item()
    pub = ConfirmingPublisher(url="amqp://guest:guest@127.0.0.1:1//")
    with pytest.raises(BrokerUnavailable):
        relay.relay_batch(pub)
    ev = OutboxEvent.objects.get()
    assert ev.attempts == 0 and ev.published_at is None and ev.dead_lettered_at is None


def test_outbox_enqueue_outside_a_transaction_is_refused(db):
    with pytest.raises(RuntimeError):
        outbox_enqueue(event_type="x.y.v1", aggregate_id=1, sequence=1, payload={})
