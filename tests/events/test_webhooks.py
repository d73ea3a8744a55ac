"""Webhooks and completion callbacks: signing, retries, SSRF guard, breaker, auto-disable, the API."""

from __future__ import annotations

import json
import time
from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from audit.models import AuditRecord
from events import relay, webhooks
from events.bus import ConfirmingPublisher
from events.models import Delivery, Subscription
from tests import factories
from tests.events.receiver import Receiver
from workitems import services

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def receiver():
    made = []

    def make(statuses=(), then=200):
        r = Receiver(statuses, then)
        made.append(r)
        return r

    yield make
    for r in made:
        r.close()


@pytest.fixture
def api():
    def make(user):
        c = APIClient()
        c.force_authenticate(user)
        return c

    return make


@pytest.fixture
def relay_once(names):
    pub = ConfirmingPublisher(exchange=names["exchange"])
    yield lambda: relay.relay_drain(pub)
    pub.close()


def _subscribe(api, user, url, types=("workitem.created.v1",)):
    r = api(user).post("/api/v1/subscriptions", {"url": url, "event_types": list(types)}, format="json")
    assert r.status_code == 201, r.content
    return r.json()


def _deliver_until(predicate, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        webhooks.deliver_due()
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("deliveries did not reach the expected state in time")


def test_500_500_200_is_delivered_with_three_attempts_logged(
    events_config, receiver, api, svc, make_item, relay_once, tap
):
    events_config({"relay": {"nudge": "none"}})
    tap()  # declares the exchange
    rec = receiver([500, 500], then=200)
    sub = _subscribe(api, svc, rec.url)
    assert sub["secret"].startswith("whsec_")
    item = make_item()
    assert relay_once() == 1
    delivery = Delivery.objects.get()
    _deliver_until(lambda: Delivery.objects.get().status == Delivery.DELIVERED)

    delivery.refresh_from_db()
    assert delivery.attempts == 3
    assert [a["status_code"] for a in delivery.attempt_log] == [500, 500, 200]
    reqs = rec.wait_for(3)
    assert len(reqs) == 3
    ids = {r["headers"]["webhook-id"] for r in reqs}
    assert ids == {str(delivery.event.event_id)}  # the same id on every retry: receivers dedupe by it
    for r in reqs:
        assert webhooks.verify(sub["secret"], r["headers"], r["body"])
        assert not webhooks.verify(sub["secret"], r["headers"], r["body"] + b" ")
    body = json.loads(reqs[-1]["body"])
    assert body["event_type"] == "workitem.created.v1" and body["payload"]["work_item"]["id"] == item.pk

    page = api(svc).get(f"/api/v1/subscriptions/{sub['id']}/deliveries").json()
    assert page["results"][0]["status"] == "delivered"
    assert [a["status_code"] for a in page["results"][0]["attempt_log"]] == [500, 500, 200]
    assert page["results"][0]["event_id"] == str(delivery.event.event_id)
    assert Subscription.objects.get().consecutive_failures == 0


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/hook",
        "http://localhost/hook",
        "http://10.1.2.3/hook",
        "http://192.168.0.10/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://100.64.0.1/hook",
        "ftp://example.com/hook",
    ],
)
def test_private_loopback_and_link_local_urls_are_refused(events_config, api, svc, url):
    events_config({"webhooks": {"allowPrivateTargets": False}})
    r = api(svc).post("/api/v1/subscriptions", {"url": url, "event_types": ["workitem.created.v1"]}, format="json")
    assert r.status_code == 400, r.content
    assert r["Content-Type"] == "application/problem+json"
    assert r.json()["errors"][0]["field"] == "url"
    assert Subscription.objects.count() == 0


def test_a_callback_to_a_private_address_is_refused_at_delivery(
    events_config, receiver, svc, alice, queue, relay_once, tap
):
    events_config({"relay": {"nudge": "none"}})  # private targets allowed when the item is created ...
    tap()
    rec = receiver()
    item = factories.item(actor=svc, queue=queue, callback_url=rec.url)
    services.work_item_cancel(item_id=item.pk, actor=svc, reason="no longer needed")
    relay_once()
    events_config({"relay": {"nudge": "none"}, "webhooks": {"allowPrivateTargets": False}})  # ... not when sent
    webhooks.deliver_due()
    d = Delivery.objects.get()
    assert d.kind == Delivery.CALLBACK and d.status == Delivery.FAILED and d.attempts == 1
    assert d.last_error.startswith("refused: 127.0.0.1 is loopback")
    assert rec.requests == []


@pytest.mark.parametrize(
    "form",
    [
        "http://localhost:{port}/hook",
        "http://LocalHost:{port}/hook",
        "http://127.0.0.1:{port}/hook",
        "http://[::ffff:127.0.0.1]:{port}/hook",
    ],
)
def test_a_subscription_whose_host_resolves_inward_is_refused_at_send_time(
    events_config, receiver, api, svc, make_item, relay_once, tap, form
):
    """What a name resolves to may change after the subscription was accepted: every attempt
    resolves it again, and an inward address fails the delivery at once, with nothing sent."""
    events_config({"relay": {"nudge": "none"}})
    tap()
    rec = receiver()
    url = form.format(port=rec.server.server_address[1])
    sub = _subscribe(api, svc, url)  # accepted while private targets are allowed
    make_item()
    relay_once()
    events_config({"relay": {"nudge": "none"}, "webhooks": {"allowPrivateTargets": False}})
    assert webhooks.deliver_due() == 1
    refused = Delivery.objects.get()
    assert refused.status == Delivery.FAILED and refused.attempts == 1 and refused.last_status_code is None
    assert refused.last_error.startswith("refused: ") and "127.0.0.1" in refused.last_error
    assert refused.attempt_log[0]["error"] == refused.last_error
    page = api(svc).get(f"/api/v1/subscriptions/{sub['id']}/deliveries").json()
    assert page["results"][0]["status"] == "failed" and page["results"][0]["last_error"] == refused.last_error
    assert webhooks.deliver_due() == 0  # failed for good: not tried again
    assert rec.requests == []
    # The same URL reaches the receiver when private targets are allowed: nothing arrived above
    # because the guard refused it, not because the receiver was unreachable.
    events_config({"relay": {"nudge": "none"}})
    make_item()
    relay_once()
    _deliver_until(lambda: Delivery.objects.filter(status=Delivery.DELIVERED).count() == 1)
    assert len(rec.wait_for(1)) == 1


def test_a_callback_host_that_does_not_resolve_is_retried_not_failed(events_config, svc, queue, relay_once, tap):
    events_config({"relay": {"nudge": "none"}, "webhooks": {"allowPrivateTargets": False, "maxAttempts": 2}})
    tap()
    item = factories.item(actor=svc, queue=queue, callback_url="https://engine.invalid/cb")  # accepted at create
    services.work_item_cancel(item_id=item.pk, actor=svc, reason="no longer needed")
    relay_once()
    webhooks.deliver_due()
    d = Delivery.objects.get()
    assert d.status == Delivery.PENDING and d.attempts == 1
    assert d.last_error.startswith("unresolved: cannot resolve engine.invalid")
    _deliver_until(lambda: Delivery.objects.get().status == Delivery.FAILED)
    assert Delivery.objects.get().attempts == 2  # then webhooks.maxAttempts fails it, as any failure


def test_callback_url_gets_the_completion_signed(events_config, receiver, svc, alice, queue, relay_once, tap):
    events_config({"relay": {"nudge": "none"}})
    tap()
    rec = receiver()
    item = factories.item(actor=svc, queue=queue, callback_url=rec.url + "?step=review")
    services.work_item_claim(item_id=item.pk, actor=alice)
    services.work_item_start(item_id=item.pk, actor=alice)
    services.work_item_complete(item_id=item.pk, actor=alice, result={"approved": True})
    assert relay_once() == 4
    _deliver_until(lambda: Delivery.objects.filter(status=Delivery.DELIVERED).count() == 1)
    (req,) = rec.wait_for(1)
    assert req["path"] == "/hook?step=review"
    assert webhooks.verify(webhooks.callback_secret(), req["headers"], req["body"])
    body = json.loads(req["body"])
    assert body["event_type"] == "workitem.completed.v1"
    assert body["payload"]["work_item"]["result"] == {"approved": True}
    assert Delivery.objects.count() == 1  # only the terminal event goes to the callback


def test_breaker_opens_then_the_subscription_is_disabled_and_audited(
    events_config, receiver, api, svc, make_item, relay_once, tap
):
    events_config(
        {
            "relay": {"nudge": "none"},
            "webhooks": {"breakerThreshold": 2, "breakerOpenSeconds": 60, "disableAfterFailures": 3, "maxAttempts": 10},
        }
    )
    tap()
    rec = receiver(then=500)
    sub = _subscribe(api, svc, rec.url)
    for _ in range(3):
        make_item()
    relay_once()
    assert webhooks.deliver_due() == 2  # the second failure opens the circuit: the third waits
    s = Subscription.objects.get()
    assert s.consecutive_failures == 2 and s.circuit_open_until > timezone.now()
    assert len(rec.requests) == 2
    assert webhooks.deliver_due() == 0  # open: nothing goes out
    # time passes: the circuit half-opens, one probe goes out, fails, and the subscription is disabled
    Subscription.objects.update(circuit_open_until=timezone.now() - timedelta(seconds=1))
    Delivery.objects.update(next_attempt_at=timezone.now())
    assert webhooks.deliver_due() == 1
    s.refresh_from_db()
    assert not s.active and s.disabled_at is not None and "3 consecutive" in s.disabled_reason
    audit = AuditRecord.objects.filter(stream=f"subscription:{sub['id']}").order_by("seq")
    assert [a.action for a in audit] == ["create", "disable"]
    assert audit.last().to_state == "disabled"
    Subscription.objects.update(circuit_open_until=None)
    Delivery.objects.update(next_attempt_at=timezone.now())
    assert webhooks.deliver_due() == 0  # disabled: nothing more
    assert len(rec.requests) == 3


def test_a_410_disables_at_once(events_config, receiver, api, svc, make_item, relay_once, tap):
    events_config({"relay": {"nudge": "none"}})
    tap()
    rec = receiver([410])
    _subscribe(api, svc, rec.url)
    make_item()
    relay_once()
    webhooks.deliver_due()
    assert not Subscription.objects.get().active
    assert Delivery.objects.get().status == Delivery.FAILED


def test_subscription_api_ownership_and_validation(events_config, api, svc, alice, ada_admin):
    events_config()
    other = factories.user("svc2", roles=["service"])
    sub = _subscribe(api, svc, "http://127.0.0.1:1/x", ["workitem.completed.v1", "workitem.cancelled.v1"])
    listed = api(svc).get("/api/v1/subscriptions").json()
    assert [s["id"] for s in listed["results"]] == [sub["id"]]
    assert "secret" not in listed["results"][0]
    assert api(other).get("/api/v1/subscriptions").json()["results"] == []
    assert api(other).get(f"/api/v1/subscriptions/{sub['id']}/deliveries").status_code == 404
    assert api(other).delete(f"/api/v1/subscriptions/{sub['id']}").status_code == 404
    assert api(alice).get("/api/v1/subscriptions").status_code == 403
    assert [s["id"] for s in api(ada_admin).get("/api/v1/subscriptions").json()["results"]] == [sub["id"]]
    bad = api(svc).post(
        "/api/v1/subscriptions", {"url": "http://127.0.0.1:1/x", "event_types": ["nope"]}, format="json"
    )
    assert bad.status_code == 400 and bad.json()["errors"][0]["field"] == "event_types[0]"
    assert api(svc).delete(f"/api/v1/subscriptions/{sub['id']}").status_code == 204
    assert api(svc).get("/api/v1/subscriptions").json()["results"] == []
    assert api(svc).get(f"/api/v1/subscriptions/{sub['id']}/deliveries").status_code == 404
    assert [a.action for a in AuditRecord.objects.filter(stream=f"subscription:{sub['id']}").order_by("seq")] == [
        "create",
        "delete",
    ]


@pytest.fixture
def ada_admin(db):
    return factories.user("ada-admin", roles=["admin"])
