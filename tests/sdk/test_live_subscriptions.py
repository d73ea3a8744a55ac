"""The SDK's webhook-subscription methods against the real server (live_server)."""

from __future__ import annotations

import pytest
import workstream_client as wc

EVENTS = ["workitem.completed.v1", "workitem.cancelled.v1"]


def test_subscriptions(ws, worker_client, alice, config_override):
    with pytest.raises(wc.BadRequestError):  # a loopback target, refused by default
        ws.create_subscription("http://127.0.0.1:9/hook", EVENTS)
    with pytest.raises(wc.NotAllowedError):  # subscriptions are for service clients and admins
        worker_client(alice).create_subscription("https://example.com/hook", EVENTS)

    config_override({"webhooks": {"allowPrivateTargets": True}})
    sub = ws.create_subscription("http://127.0.0.1:9/hook", EVENTS)
    assert sub["url"] == "http://127.0.0.1:9/hook" and sub["event_types"] == EVENTS
    assert sub["secret"]  # shown this once
    listed = list(ws.list_subscriptions())
    assert [s["id"] for s in listed] == [sub["id"]] and "secret" not in listed[0]
    assert list(ws.list_deliveries(sub["id"])) == []  # nothing has happened to deliver

    assert ws.delete_subscription(sub["id"]) is None
    assert [s["id"] for s in ws.list_subscriptions()] == []
    with pytest.raises(wc.NotFoundError):
        ws.delete_subscription(sub["id"])
