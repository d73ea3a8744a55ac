"""End to end over the API and the real services: create → claim → start → complete.

The relay (with its webhook sender) and the notification consumer run as they do
in a deployment, in threads; the API writes nudge the relay through Redis.
"""

from __future__ import annotations

import json
import threading

import amqp
import pytest
from kombu import Connection
from rest_framework.test import APIClient

from events import bus, notifications, webhooks
from events.consumers import NotificationConsumer
from events.models import ProcessedEvent
from events.nudge import redis_client
from events.runner import RelayProcess
from tests.events.conftest import wait_until as _wait
from tests.events.receiver import Receiver

pytestmark = pytest.mark.django_db(transaction=True)


def _api(user) -> APIClient:
    c = APIClient()
    c.force_authenticate(user)
    return c


def test_create_claim_complete_reaches_exchange_webhook_and_notifications(
    events_config, tap, names, cleanup_queues, background, svc, alice, sam, queue
):
    events_config()
    cleanup_queues.extend([names["notifications"], names["notifications_dlq"]])
    t = tap("workitem.#")
    rec = Receiver()
    try:
        r = _api(svc).post(
            "/api/v1/subscriptions", {"url": rec.url, "event_types": ["workitem.completed.v1"]}, format="json"
        )
        assert r.status_code == 201, r.content
        secret = r.json()["secret"]

        relay_proc = RelayProcess(stop=threading.Event())
        background.start(relay_proc.run, relay_proc.stop, "relay")
        consumer = NotificationConsumer(stop=threading.Event())
        background.start(consumer.run, consumer.stop, "notifications")
        _wait(lambda: _queue_exists(names["notifications"]), what="notification queue declared")

        r = _api(svc).post(
            "/api/v1/workitems",
            {"workflow_id": "wf-e2e", "task_name": "review", "queue": queue.name, "correlation_id": "corr-e2e"},
            format="json",
            HTTP_X_REQUEST_ID="req-e2e-1",
        )
        assert r.status_code == 201, r.content
        item_id = r.json()["id"]
        a = _api(alice)
        assert a.post(f"/api/v1/workitems/{item_id}/claim", format="json").status_code == 200
        assert a.post(f"/api/v1/workitems/{item_id}/start", format="json").status_code == 200
        r = a.post(f"/api/v1/workitems/{item_id}/complete", {"result": {"approved": True}}, format="json")
        assert r.status_code == 200, r.content

        # 1. the exchange: all four events, in order, with the full envelope
        got = t.drain(expect=4, timeout=15)
        envs = [env for env, _ in got]
        assert [e["event_type"] for e in envs] == [
            "workitem.created.v1",
            "workitem.claimed.v1",
            "workitem.started.v1",
            "workitem.completed.v1",
        ]
        assert [e["sequence"] for e in envs] == [1, 2, 3, 4]
        for e in envs:
            assert e["payload"]["work_item"]["id"] == item_id
            assert e["correlation_id"] == "corr-e2e"
            assert e["producer"] == "workstream"
            assert e["occurred_at"] and e["event_id"]
        assert envs[0]["trace_id"] == "req-e2e-1"  # the request id travels into the event
        transition = envs[3]["payload"]["transition"]
        assert (transition["from_state"], transition["to_state"], transition["actor"]) == (
            "IN_PROGRESS",
            "COMPLETED",
            "alice",
        )

        # 2. the webhook receiver on loopback: the signed completion
        (req,) = rec.wait_for(1, timeout=15)
        assert webhooks.verify(secret, req["headers"], req["body"])
        assert json.loads(req["body"]) == envs[3]
        assert req["headers"]["webhook-id"] == envs[3]["event_id"]

        # 3. the notification consumer: each event once, even when delivered again
        _wait(lambda: ProcessedEvent.objects.count() == 4, what="4 events recorded")
        with Connection("amqp://guest:guest@127.0.0.1:5672//") as conn:
            ch = conn.channel()
            ch.confirm_select()  # the broker holds both before the wait starts (none lost with the close)
            for env in envs[:2]:  # a redelivery, as after a relay crash: same event_id
                bus.publish_confirmed(
                    ch, exchange=names["exchange"], routing_key=env["event_type"], body=json.dumps(env).encode()
                )
        _wait(lambda: consumer.handled >= 6, what="duplicates consumed")
        assert ProcessedEvent.objects.count() == 4
        assert sorted(str(e) for e in ProcessedEvent.objects.values_list("event_id", flat=True)) == sorted(
            e["event_id"] for e in envs
        )
        assert redis_client().exists(notifications.processed_key(envs[0]["event_id"]))

        page = _api(sam).get("/api/v1/notifications", {"aggregate_id": str(item_id)}).json()
        assert [n["event_type"] for n in page["results"]][::-1] == [e["event_type"] for e in envs]
        assert page["results"][0]["envelope"] == envs[3]
        assert _api(alice).get("/api/v1/notifications").status_code == 403
    finally:
        rec.close()


def _queue_exists(name: str) -> bool:
    with Connection("amqp://guest:guest@127.0.0.1:5672//") as conn:
        try:
            conn.channel().queue_declare(name, passive=True)
            return True
        except amqp.exceptions.NotFound:
            return False
