"""The bus topology exists from the processes' start, before any event (real RabbitMQ).

The relay declares its exchange when it starts; the consumers declare their queues and
dead-letter queues when they start. Names are the test's own (conftest `names`), and
everything is deleted afterwards, so parallel runs on one broker do not collide.
"""

from __future__ import annotations

import json
import threading

import amqp
import pytest
from django.conf import settings
from kombu import Connection

from config import wsconfig
from events import tasks
from events.consumers import CommandConsumer, NotificationConsumer
from events.models import ProcessedEvent
from events.runner import RelayProcess
from tests.events.conftest import wait_until as _wait

DB = pytest.mark.django_db(transaction=True)  # the relay and consumers use their own connections: committed rows


def _exists(kind: str, name: str) -> bool:
    """Whether the exchange or queue `name` exists: a passive declare (404 when it does not)."""
    with Connection(settings.AMQP_URL, connect_timeout=5) as conn:
        ch = conn.channel()
        try:
            if kind == "exchange":
                ch.exchange_declare(name, "topic", passive=True)
            else:
                ch.queue_declare(name, passive=True)
            return True
        except amqp.exceptions.NotFound:
            return False


@pytest.fixture
def broker_cleanup(names):
    """Deletes the test's exchange and the queues listed, whatever the test left."""
    queues: list[str] = []
    yield queues
    with Connection(settings.AMQP_URL, connect_timeout=5) as conn:
        for q in queues:
            conn.channel().queue_delete(q)  # a missing queue is no error for queue.delete
        conn.channel().exchange_delete(names["exchange"])


@DB
def test_the_relay_declares_the_exchange_at_start_before_any_event(events_config, names, broker_cleanup, make_item):
    events_config({"relay": {"nudge": "none"}})
    assert not _exists("exchange", names["exchange"])
    RelayProcess(webhooks_enabled=False, workers=1).run(until_empty=True)  # nothing in the outbox
    assert _exists("exchange", names["exchange"])

    # a consumer that binds now, before the first event, gets it
    bound = f"ws-test.bound-early.{names['suffix']}"
    broker_cleanup.append(bound)
    with Connection(settings.AMQP_URL, connect_timeout=5) as conn:
        ch = conn.channel()
        ch.queue_declare(bound, durable=True, auto_delete=False, arguments={"x-expires": 600_000})
        ch.queue_bind(bound, names["exchange"], "workitem.#")  # a 404 here if the exchange were missing
        item = make_item()
        assert RelayProcess(webhooks_enabled=False, workers=1).run(until_empty=True) == 1
        msg = ch.basic_get(bound, no_ack=True)
    assert msg is not None
    assert json.loads(msg.body)["payload"]["work_item"]["id"] == item.pk


@DB
def test_the_celery_relay_task_declares_the_exchange_with_nothing_to_publish(events_config, names, broker_cleanup):
    events_config({"relay": {"nudge": "celery"}})
    assert not _exists("exchange", names["exchange"])
    tasks._publisher = None  # this process's shared publisher, as a fresh worker has it
    try:
        assert tasks.relay_outbox() == 0  # beat's run on an empty outbox
    finally:
        if tasks._publisher is not None:
            tasks._publisher.close()
        tasks._publisher = None
    assert _exists("exchange", names["exchange"])


@DB
def test_the_consumers_declare_their_queues_and_dead_letter_queues_at_start(events_config, names, broker_cleanup):
    events_config()
    broker_cleanup.extend([names["commands"], names["dlq"], names["notifications"], names["notifications_dlq"]])
    for q in broker_cleanup:
        assert not _exists("queue", q)
    consumers = [CommandConsumer(stop=threading.Event()), NotificationConsumer(stop=threading.Event())]
    threads = [threading.Thread(target=c.run, daemon=True) for c in consumers]
    for t in threads:
        t.start()
    try:
        for q in broker_cleanup:
            _wait(lambda q=q: _exists("queue", q), what=f"queue {q} declared")
        assert _exists("exchange", names["exchange"])  # the notification consumer binds to it
    finally:
        for c in consumers:
            c.stop.set()
        for t in threads:
            t.join(timeout=10)


@DB
def test_what_the_notification_consumer_cannot_read_goes_to_its_dead_letter_queue(events_config, names, broker_cleanup):
    events_config()
    broker_cleanup.extend([names["notifications"], names["notifications_dlq"]])
    consumer = NotificationConsumer(stop=threading.Event())
    thread = threading.Thread(target=consumer.run, daemon=True)
    thread.start()
    try:
        _wait(lambda: _exists("queue", names["notifications"]), what="notification queue declared")
        with Connection(settings.AMQP_URL, connect_timeout=5) as conn:
            ch = conn.channel()
            ch.basic_publish(
                amqp.Message(b'{"not": "an envelope"}', delivery_mode=2),
                exchange=names["exchange"],
                routing_key="workitem.created.v1",
            )
            _wait(lambda: consumer.handled == 1, what="the message consumed")
            msg = ch.basic_get(names["notifications_dlq"], no_ack=True)
        assert msg is not None
        assert msg.body == b'{"not": "an envelope"}'
        assert msg.headers["x-workstream-reason"].startswith("not an event envelope")
        assert msg.headers["x-workstream-queue"] == names["notifications"]
        assert ProcessedEvent.objects.count() == 0
    finally:
        consumer.stop.set()
        thread.join(timeout=10)


def test_the_notification_dead_letter_queue_is_named_as_seed_deployments_expect(tmp_path):
    empty = tmp_path / "empty.yaml"
    empty.write_text("{}\n")
    for cfg in (wsconfig.load(None), wsconfig.load(empty)):  # the shipped file, the built-in default
        assert cfg.eventBus.notificationDeadLetterQueue == "workstream.notifications.dlq"
