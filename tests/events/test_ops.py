"""Operations around delivery: nudges, metrics, readiness, configuration, purge, the Celery task."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.db import transaction
from django.test import Client
from django.utils import timezone

from events import nudge, relay, tasks
from events.models import Delivery, OutboxEvent
from workitems import services

pytestmark = pytest.mark.django_db(transaction=True)


def _nudges(sub, wait: float = 0.5) -> int:
    """Messages on the channel within `wait` (get_message also returns None for the subscribe ack)."""
    n, deadline = 0, time.monotonic() + wait
    while time.monotonic() < deadline:
        if sub.get_message(timeout=0.1) is not None:
            n += 1
    return n


def test_a_commit_nudges_the_relay_process_once(events_config, svc, alice, queue):
    events_config({"relay": {"nudge": "process"}})
    sub = nudge.redis_client().pubsub(ignore_subscribe_messages=True)
    sub.subscribe(nudge.relay_channel())
    try:
        with transaction.atomic():  # three events, one transaction: one nudge
            item = services.work_item_create(
                actor=svc, data={"workflow_id": "w", "task_name": "t", "queue": queue.name}
            )
            services.work_item_claim(item_id=item.pk, actor=alice)
            services.work_item_start(item_id=item.pk, actor=alice)
        assert _nudges(sub) == 1
        services.work_item_escalate(item_id=item.pk, actor=None)
        assert _nudges(sub) == 1
        events_config({"features": {"events": {"publish": False}}, "relay": {"nudge": "process"}})
        services.work_item_escalate(item_id=item.pk, actor=None)
        assert _nudges(sub) == 0  # events off: rows only
        assert OutboxEvent.objects.count() == 5
    finally:
        sub.close()


def test_the_celery_task_drains_the_outbox(events_config, tap, names, make_item):
    events_config({"relay": {"nudge": "none"}})
    t = tap()
    make_item()
    make_item()
    assert tasks.relay_outbox.apply().get() == 2
    assert len(t.drain(expect=2)) == 2
    assert not OutboxEvent.objects.filter(published_at__isnull=True).exists()


def test_metrics_expose_backlog_and_age(events_config, make_item):
    events_config()
    make_item()
    OutboxEvent.objects.update(occurred_at=timezone.now() - timedelta(seconds=90))
    body = Client().get("/metrics").content.decode()
    assert "workstream_outbox_backlog 1.0" in body
    gauge = "workstream_outbox_oldest_unpublished_age_seconds"
    age = next(line for line in body.splitlines() if line.startswith(gauge))
    assert float(age.split()[1]) >= 90
    for name in (
        "workstream_outbox_dead_letters",
        "workstream_webhook_backlog",
        "workstream_outbox_published_total",
        "workstream_outbox_dead_lettered_total",
        "workstream_outbox_publish_failures_total",
        "workstream_webhook_delivery_seconds",
    ):
        assert name in body


def test_readiness_fails_when_the_broker_is_required_and_down(events_config, settings):
    settings.AMQP_URL = "amqp://guest:guest@127.0.0.1:1//"
    events_config({"features": {"events": {"publish": False, "subscribe": False}}})
    r = Client().get("/health/ready")
    assert "rabbitmq" not in r.json()["checks"]  # events off: RabbitMQ is not needed
    events_config()
    r = Client().get("/health/ready")
    assert r.status_code == 503
    assert r.json()["checks"]["rabbitmq"]["status"] == "error"


def test_purge_keeps_recent_rows_and_rows_with_pending_deliveries(events_config, make_item):
    events_config()
    for _ in range(3):
        make_item()
    old = timezone.now() - timedelta(days=30)
    a, b, c = OutboxEvent.objects.order_by("id")
    OutboxEvent.objects.filter(pk__in=[a.pk, b.pk]).update(published_at=old)
    OutboxEvent.objects.filter(pk=c.pk).update(published_at=timezone.now())
    Delivery.objects.create(event=a, event_type=a.event_type, url="http://x", status=Delivery.DELIVERED)
    Delivery.objects.create(event=b, event_type=b.event_type, url="http://x", status=Delivery.PENDING)
    assert relay.purge_published() == 1
    assert list(OutboxEvent.objects.order_by("id").values_list("pk", flat=True)) == [b.pk, c.pk]
    assert Delivery.objects.count() == 1


def test_admin_shows_the_event_tables_and_replays_dead_letters(events_config, make_item):
    from django.contrib.auth import get_user_model

    from events.models import InboxCommand, ProcessedEvent, Subscription

    events_config()
    make_item()
    ev = OutboxEvent.objects.get()
    OutboxEvent.objects.update(dead_lettered_at=timezone.now(), attempts=3, last_error="nacked by the broker")
    Subscription.objects.create(url="http://127.0.0.1:1/x", event_types=["workitem.created.v1"], secret="whsec_x")
    Delivery.objects.create(event=ev, event_type=ev.event_type, url="http://127.0.0.1:1/x")
    InboxCommand.objects.create(command_id="c1", command="claim", outcome="rejected")
    ProcessedEvent.objects.create(event_id=ev.event_id, event_type=ev.event_type, envelope=ev.envelope())
    admin = get_user_model().objects.create_superuser("root", "root@example.com", "pw-root-123")
    c = Client()
    c.force_login(admin)
    for name in ("outboxevent", "subscription", "delivery", "inboxcommand", "processedevent"):
        assert c.get(f"/admin/events/{name}/").status_code == 200, name
    assert c.get("/admin/events/outboxevent/?delivery=dead").status_code == 200
    r = c.post("/admin/events/outboxevent/", {"action": "replay", "_selected_action": [ev.pk]})
    assert r.status_code == 302
    ev.refresh_from_db()
    assert ev.dead_lettered_at is None and ev.attempts == 0
