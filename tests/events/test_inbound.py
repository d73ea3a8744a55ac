"""Inbound commands over the real broker: idempotent application, outcomes, poison to the DLQ."""

from __future__ import annotations

import json
import threading
import time
import uuid

import amqp
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from kombu import Connection

from events import bus, inbound
from events.consumers import CommandConsumer
from events.models import InboxCommand, OutboxEvent
from tests import factories
from workitems.models import WorkItem

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def command_bus(names, cleanup_queues):
    """Declares the command queues (as the consumer does) and publishes raw messages to them."""
    cleanup_queues += [names["commands"], names["dlq"]]
    conn = Connection("amqp://guest:guest@127.0.0.1:5672//", connect_timeout=5)
    conn.connect()
    ch = conn.channel()
    bus.declare_command_queues(ch, queue=names["commands"], dead_letter_queue=names["dlq"])

    class CommandBus:
        def send(self, body) -> None:
            if not isinstance(body, bytes):
                body = json.dumps(body).encode()
            ch.basic_publish(amqp.Message(body, delivery_mode=2), exchange="", routing_key=names["commands"])

        def depth(self, queue: str) -> int:
            return ch.queue_declare(queue, passive=True).message_count

        def dead_letters(self) -> list:
            out = []
            while (m := ch.basic_get(names["dlq"], no_ack=True)) is not None:
                out.append(m)
            return out

    yield CommandBus()
    conn.release()


def _start_consumers(background, names, n=1) -> list[CommandConsumer]:
    consumers = []
    for i in range(n):
        c = CommandConsumer(stop=threading.Event())
        background.start(c.run, c.stop, f"commands-{i}")
        consumers.append(c)
    return consumers


def _wait(predicate, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("condition not reached in time")


def test_each_command_delivered_three_times_is_applied_once(
    events_config, command_bus, background, names, svc, alice, queue
):
    events_config({"relay": {"nudge": "none"}})
    consumers = _start_consumers(background, names, n=2)  # two consumers race on the duplicates
    create_id, corr = str(uuid.uuid4()), f"corr-{uuid.uuid4().hex[:8]}"
    create = {
        "command_id": create_id,
        "command": "create",
        "actor": "svc",
        "correlation_id": corr,
        "data": {"workflow_id": "wf-in", "task_name": "review", "queue": queue.name},
    }
    for _ in range(3):
        command_bus.send(create)
    _wait(lambda: sum(c.handled for c in consumers) >= 3)
    _wait(lambda: InboxCommand.objects.filter(command_id=create_id).exclude(outcome="").exists())
    item = WorkItem.objects.get(workflow_id="wf-in")
    claim = {"command_id": str(uuid.uuid4()), "command": "claim", "actor": "alice", "item_id": item.pk}
    for _ in range(3):
        command_bus.send(claim)
    _wait(lambda: sum(c.handled for c in consumers) >= 6)
    _wait(lambda: command_bus.depth(names["commands"]) == 0)

    assert WorkItem.objects.filter(workflow_id="wf-in").count() == 1
    item.refresh_from_db()
    assert item.state == "ASSIGNED" and item.assignee == alice and item.version == 2
    assert InboxCommand.objects.count() == 2
    assert set(InboxCommand.objects.values_list("outcome", flat=True)) == {"applied"}
    outcomes = OutboxEvent.objects.filter(aggregate_type="command").order_by("id")
    assert [(o.aggregate_id, o.event_type) for o in outcomes] == [
        (create_id, "command.applied.v1"),
        (claim["command_id"], "command.applied.v1"),
    ]
    assert outcomes[0].correlation_id == corr
    assert outcomes[0].payload["work_item"]["id"] == item.pk
    created = OutboxEvent.objects.get(event_type="workitem.created.v1")
    assert created.correlation_id == corr
    assert OutboxEvent.objects.filter(aggregate_type="workitem").count() == 2  # created + claimed, once each
    assert inbound.seen(create_id)  # the Redis fast path knows it
    assert command_bus.dead_letters() == []


def test_refused_commands_are_outcomes_not_poison(events_config, command_bus, background, names, svc):
    events_config({"relay": {"nudge": "none"}})
    (consumer,) = _start_consumers(background, names)
    cmd = {
        "command_id": str(uuid.uuid4()),
        "command": "claim",
        "actor": "svc",
        "item_id": 999999,
        "correlation_id": "c9",
    }
    command_bus.send(cmd)
    _wait(lambda: consumer.handled >= 1)
    _wait(lambda: InboxCommand.objects.exclude(outcome="").exists())
    row = InboxCommand.objects.get()
    assert row.outcome == "rejected" and row.error["type"] == "not-found"
    ev = OutboxEvent.objects.get()
    assert ev.event_type == "command.rejected.v1" and ev.correlation_id == "c9"
    assert ev.payload["error"]["type"] == "not-found"
    assert command_bus.dead_letters() == []


def test_poison_goes_to_the_dlq_with_its_reason_and_the_consumer_carries_on(
    events_config, command_bus, background, names, svc, queue
):
    events_config({"relay": {"nudge": "none"}})
    command_bus.send(b"{not json")
    command_bus.send({"command_id": "x1", "command": "explode", "actor": "svc"})
    # A NUL character in an envelope field (here the correlation id) is refused at parse, as
    # the REST parser refuses it: dead-lettered at once with the field named, not retried.
    nul = {
        "command_id": str(uuid.uuid4()),
        "command": "create",
        "actor": "svc",
        "correlation_id": "corr\u0000",
        "data": {"workflow_id": "wf-nul", "task_name": "t", "queue": queue.name},
    }
    command_bus.send(nul)
    good = {
        "command_id": str(uuid.uuid4()),
        "command": "create",
        "actor": "svc",
        "data": {"workflow_id": "wf-after-poison", "task_name": "t", "queue": queue.name},
    }
    command_bus.send(good)
    _start_consumers(background, names)
    _wait(lambda: WorkItem.objects.filter(workflow_id="wf-after-poison").exists())
    _wait(lambda: command_bus.depth(names["dlq"]) == 3)
    _wait(lambda: command_bus.depth(names["commands"]) == 0)
    dead = command_bus.dead_letters()
    reasons = [m.headers["x-workstream-reason"] for m in dead]
    assert reasons[0].startswith("invalid command: not JSON")
    assert reasons[1].startswith("invalid command: command must be one of")
    assert reasons[2] == "invalid command: correlation_id must not contain NUL (\\u0000) characters"
    assert dead[0].body == b"{not json"  # the original message, untouched
    assert json.loads(dead[2].body)["command_id"] == nul["command_id"]
    assert not InboxCommand.objects.filter(command_id=nul["command_id"]).exists()  # nothing half-applied
    assert InboxCommand.objects.get(command_id=good["command_id"]).outcome == "applied"


def test_consumers_do_not_start_when_subscribing_is_off(events_config):
    events_config({"features": {"events": {"subscribe": False}}})
    with pytest.raises(CommandError, match="subscribe is off"):
        call_command("consume_commands")
    with pytest.raises(CommandError, match="subscribe is off"):
        call_command("consume_notifications")


def test_skip_and_forward_come_through_the_bus(events_config, command_bus, background, names, svc, alice, bob, queue):
    """The bus covers every caller action (models.CALLER_ACTIONS): skip and forward with their arguments."""
    events_config({"relay": {"nudge": "none"}})
    consumers = _start_consumers(background, names)
    optional = factories.item(actor=svc, queue=queue, optional=True)
    held = factories.item(actor=svc, queue=queue)
    command_bus.send({"command_id": str(uuid.uuid4()), "command": "claim", "actor": "alice", "item_id": held.pk})
    _wait(lambda: sum(c.handled for c in consumers) >= 1)
    skip = {
        "command_id": str(uuid.uuid4()),
        "command": "skip",
        "actor": "svc",
        "item_id": optional.pk,
        "reason": "not needed any more",
    }
    forward = {
        "command_id": str(uuid.uuid4()),
        "command": "forward",
        "actor": "alice",
        "item_id": held.pk,
        "expected_version": 2,  # after the claim
        "users": ["bob"],
        "groups": [],
    }
    bad_forward = {**forward, "command_id": str(uuid.uuid4()), "users": "bob", "expected_version": None}
    for cmd in (skip, forward, bad_forward):
        command_bus.send(cmd)
    _wait(lambda: sum(c.handled for c in consumers) >= 4)
    optional.refresh_from_db()
    held.refresh_from_db()
    assert (optional.state, optional.outcome, optional.outcome_reason) == (
        "CANCELLED",
        "skipped",
        "not needed any more",
    )
    assert (held.state, held.assignee_id) == ("OFFERED", None)
    assert list(held.candidate_users.values_list("username", flat=True)) == ["bob"]
    outcomes = dict(InboxCommand.objects.values_list("command_id", "outcome"))
    assert outcomes[skip["command_id"]] == outcomes[forward["command_id"]] == "applied"
    rejected = InboxCommand.objects.get(command_id=bad_forward["command_id"])
    assert rejected.outcome == "rejected" and rejected.error["errors"][0]["field"] == "users"
    assert command_bus.dead_letters() == []
