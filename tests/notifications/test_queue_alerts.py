"""A queue's alerts: its `supervisor_groups` are told, through its `channels`; the capacity
alert tells them once per crossing; a `critical` queue's breaches page PagerDuty (Events
API v2, a receiver on loopback) with the routing key kept secret."""

from __future__ import annotations

import json
import logging
from datetime import timedelta

import pytest

from config.timefmt import isoformat_z
from notifications import channels, tasks
from notifications.models import Notification, NotificationDelivery
from tests import factories
from tests.notifications.conftest import send_until_done
from tests.workitems.test_admin import QUEUE_FORM, saved
from workitems import services
from workitems.errors import ValidationFailed
from workitems.models import Queue

pytestmark = pytest.mark.django_db(transaction=True)
ROUTING_KEY = "R0UT1NGKEY0123456789abcdefABCDEF"


@pytest.fixture
def leads(db):
    return factories.group("claims-leads")


@pytest.fixture
def lena(leads):
    """A supervisor of the claims queue only (a member of its supervisor group)."""
    return factories.user("lena", roles=["supervisor"], groups=[leads], email="lena@example.test")


def breach(svc, queue, **overrides):
    item = factories.item(actor=svc, queue=queue, **overrides)
    services.sla_scan(now=item.created_at + timedelta(hours=4, minutes=1))
    return item


# --- the queue fields ------------------------------------------------------------------


def test_the_queue_fields_are_validated_shown_and_audited(client_for, ada, leads):
    api = client_for(ada)
    body = {
        "name": "claims",
        "supervisor_groups": ["claims-leads"],
        "channels": [{"type": "in_app"}, {"type": "slack", "ref": "claims-team"}, {"type": "pagerduty"}],
        "critical": True,
    }
    resp = api.post("/api/v1/queues", body, format="json")
    assert resp.status_code == 201, resp.content
    shown = api.get("/api/v1/queues/claims").json()
    assert {k: shown[k] for k in body} == body
    for bad, field in (
        ({"supervisor_groups": ["nobody"]}, "supervisor_groups"),
        ({"supervisor_groups": "claims-leads"}, "supervisor_groups"),
        ({"channels": "slack"}, "channels"),
        ({"channels": [{"type": "sms"}]}, "channels[0]"),
        ({"channels": [{"type": "email", "ref": "x"}]}, "channels[0]"),
        ({"channels": [{"type": "slack", "ref": "no spaces"}]}, "channels[0].ref"),
        ({"channels": [{"type": "slack", "ref": 7}]}, "channels[0].ref"),
        ({"channels": [{"type": "slack", "url": "https://hooks.slack.test/x"}]}, "channels[0]"),
        ({"channels": [{"type": "teams"}, {"type": "teams"}]}, "channels[1]"),
        ({"channels": [{"type": "in_app"}] * 21}, "channels"),
        ({"critical": "yes"}, "critical"),
    ):
        resp = api.patch("/api/v1/queues/claims", bad, format="json")
        assert resp.status_code == 400, (bad, resp.content)
        assert [e["field"] for e in resp.json()["errors"]] == [field], bad
    assert api.get("/api/v1/queues/claims").json()["channels"] == body["channels"]  # nothing written
    resp = api.patch("/api/v1/queues/claims", {"channels": None, "supervisor_groups": []}, format="json")
    assert (resp.json()["channels"], resp.json()["supervisor_groups"]) == (None, [])


def test_the_admin_sets_them_through_the_queue_command(admin_client, leads, team_a):
    form = {
        **QUEUE_FORM,
        "candidate_groups": [team_a.pk],
        "supervisor_groups": [leads.pk],
        "channels": json.dumps([{"type": "email"}]),
        "critical": "on",
    }
    saved(admin_client.post("/admin/workitems/queue/add/", form))
    q = Queue.objects.get(name="billing")
    assert (list(q.supervisor_groups.all()), q.channels, q.critical) == ([leads], [{"type": "email"}], True)
    resp = admin_client.post(
        f"/admin/workitems/queue/{q.pk}/change/", {**form, "channels": json.dumps([{"type": "fax"}])}
    )
    assert resp.status_code == 200 and "channels" in resp.context["adminform"].form.errors


# --- who is told, on which channels ------------------------------------------------------


def test_a_breach_tells_the_queues_supervisor_groups_not_every_supervisor(svc, alice, sam, lena, leads, team_a):
    q = factories.queue("claims", groups=[team_a], sla=timedelta(hours=4))
    q.supervisor_groups.set([leads])
    item = breach(svc, q, assignee="alice")
    tasks.run()
    told = set(
        Notification.objects.filter(kind="sla_breached", work_item_id=item.pk).values_list(
            "recipient__username", flat=True
        )
    )
    assert told == {"alice", "lena"}  # sam supervises, but not this queue
    # the default policy's notify: supervisors is the queue's supervisors too
    escalated = Notification.objects.filter(kind="escalated", work_item_id=item.pk)
    assert "sam" not in set(escalated.values_list("recipient__username", flat=True))
    assert (
        Notification.objects.filter(work_item_id=item.pk).values_list("queue", flat=True).distinct().get() == "claims"
    )


def test_the_queues_channels_choose_where_its_alerts_go(
    channels_on, receiver, monkeypatch, svc, alice, sam, team_a, client_for
):
    channels_on(email=True, slack=True, teams=True)
    alice.email, sam.email = "alice@example.test", "sam@example.test"
    alice.save()
    sam.save()
    own, named, teams = receiver(), receiver(), receiver()
    monkeypatch.setenv("SLACK_WEBHOOK_URL__CLAIMS", own.url)  # the queue's own: not used, a ref is named
    monkeypatch.setenv("SLACK_WEBHOOK_URL__CLAIMS_TEAM", named.url)
    monkeypatch.setenv("TEAMS_WEBHOOK_URL", teams.url)
    q = factories.queue(
        "claims",
        groups=[team_a],
        sla=timedelta(hours=4),
        channels=[{"type": "in_app"}, {"type": "slack", "ref": "claims-team"}],
    )
    item = breach(svc, q, assignee="alice")
    # a personal notification is not the queue's alert: email goes as the person chose
    services.work_item_delegate(
        item_id=item.pk,
        actor=sam,
        user=factories.user("dora", roles=["worker"], groups=[team_a], email="d@example.test"),
    )
    tasks.run()
    send_until_done()
    rows = NotificationDelivery.objects.all()
    assert set(rows.filter(kind="sla_breached").values_list("channel", "recipient")) == {
        ("slack", "slack:ref:claims-team")
    }
    assert set(rows.filter(kind="delegated").values_list("channel", flat=True)) == {"email"}
    assert own.requests == [] and teams.requests == [] and len(named.requests) == 4
    assert Notification.objects.filter(kind="sla_breached", recipient=sam).exists()  # in_app is listed
    # a named channel with nothing configured is visible as dead, not silently dropped
    q.channels = [{"type": "teams", "ref": "nowhere"}]
    q.save()
    breach(svc, q)
    tasks.run()
    dead = NotificationDelivery.objects.filter(recipient="teams:ref:nowhere")
    assert dead.count() == 4 and set(dead.values_list("status", flat=True)) == {"dead"}
    assert "no webhook URL configured" in dead.first().last_error


def test_the_capacity_alert_tells_the_supervisors_once_per_crossing(
    channels_on, receiver, monkeypatch, svc, sam, lena, leads, team_a
):
    channels_on(slack=True)
    hook = receiver()
    monkeypatch.setenv("SLACK_WEBHOOK_URL", hook.url)
    q = factories.queue("intake", groups=[team_a], max_open=10)
    q.supervisor_groups.set([leads])
    items = [factories.item(actor=svc, queue=q) for _ in range(9)]
    for _ in range(3):
        services.queue_rebalance(queue="intake")
        tasks.run()
    send_until_done()
    alerts = Notification.objects.filter(kind="capacity_alert")
    assert list(alerts.values_list("recipient__username", "queue")) == [("lena", "intake")]
    assert "9 of 10" in alerts.get().title and alerts.get().work_item_id is None
    assert len(hook.requests) == 1 and "intake" in json.loads(hook.requests[0]["body"])["text"]
    # below 90% and up again: a second crossing, a second alert
    services.work_item_cancel(item_id=items[0].pk, actor=svc, reason="dup")
    services.queue_rebalance(queue="intake")
    factories.item(actor=svc, queue=q)
    services.queue_rebalance(queue="intake")
    tasks.run()
    assert Notification.objects.filter(kind="capacity_alert").count() == 2


# --- PagerDuty ---------------------------------------------------------------------------


@pytest.fixture
def pagerduty(channels_on, receiver, monkeypatch):
    def start(statuses=(), then=202):
        channels_on(pagerduty=True)
        hook = receiver(statuses, then)
        monkeypatch.setenv("PAGERDUTY_EVENTS_URL", hook.url)
        monkeypatch.setenv("PAGERDUTY_ROUTING_KEY", ROUTING_KEY)
        return hook

    return start


def test_a_breach_on_a_critical_queue_pages_once_through_a_500(pagerduty, svc, alice, team_a, client_for, ada, caplog):
    hook = pagerduty(statuses=[500])
    q = factories.queue("payments", groups=[team_a], sla=timedelta(hours=4), critical=True)
    calm = factories.queue("archive", groups=[team_a], sla=timedelta(hours=4))  # not critical: never pages
    item = breach(svc, q, assignee="alice")
    breach(svc, calm)
    with caplog.at_level(logging.DEBUG):
        tasks.run()
        send_until_done()
    events = [json.loads(r["body"]) for r in hook.requests]
    assert [r["status"] for r in hook.requests] == [500, 202]  # at risk and escalated do not page
    first, second = events
    assert first == second  # the retry is the same event: PagerDuty dedups on dedup_key
    assert (first["routing_key"], first["event_action"]) == (ROUTING_KEY, "trigger")
    assert first["dedup_key"].startswith("workstream-")
    payload = first["payload"]
    assert (payload["severity"], payload["source"], payload["component"], payload["class"]) == (
        "critical",
        "workstream",
        "payments",
        "sla_breached",
    )
    assert f"#{item.pk}" in payload["summary"] and payload["custom_details"]["work_item"] == item.pk
    d = NotificationDelivery.objects.get(channel="pagerduty")
    assert (d.status, d.attempts, d.recipient) == ("sent", 2, "pagerduty:global")
    assert payload["timestamp"] == isoformat_z(d.created_at)  # one time format (config.timefmt), Z not +00:00
    # the routing key is nowhere but in the request to PagerDuty
    assert ROUTING_KEY not in caplog.text
    assert ROUTING_KEY not in json.dumps(list(NotificationDelivery.objects.values()), default=str)
    assert ROUTING_KEY not in client_for(ada).get("/api/v1/queues/payments").content.decode()
    assert ROUTING_KEY not in client_for(ada).get("/api/v1/features").content.decode()


def test_a_bad_event_is_dead_at_once_and_a_ref_names_its_own_key(pagerduty, monkeypatch, svc, team_a):
    hook = pagerduty(then=400)
    monkeypatch.setenv("PAGERDUTY_ROUTING_KEY__ONCALL_B", "other-key-for-team-b")
    q = factories.queue(
        "payments",
        groups=[team_a],
        sla=timedelta(hours=4),
        critical=True,
        channels=[{"type": "pagerduty", "ref": "oncall-b"}],
    )
    breach(svc, q)
    tasks.run()
    d = NotificationDelivery.objects.get(channel="pagerduty")
    assert (d.status, d.attempts, d.recipient) == ("dead", 1, "pagerduty:ref:oncall-b")
    assert "HTTP 400" in d.last_error and "other-key" not in d.last_error
    assert json.loads(hook.requests[0]["body"])["routing_key"] == "other-key-for-team-b"


def test_routes_leave_pagerduty_to_critical_queues_and_paged_triggers(ws_config, team_a, monkeypatch):
    ws_config({"notifications": {"channels": {"pagerduty": True, "email": True}}})
    monkeypatch.setenv("PAGERDUTY_ROUTING_KEY", ROUTING_KEY)
    critical = factories.queue("hot", groups=[team_a], critical=True)
    plain = factories.queue("cold", groups=[team_a])
    assert channels.routes("sla_breached", critical, alert=True, paged=True) == (
        {"in_app", "email"},
        [("pagerduty", "pagerduty:global")],
    )
    assert channels.routes("sla_at_risk", critical, alert=True, paged=False)[1] == []
    assert channels.routes("sla_breached", plain, alert=True, paged=True)[1] == []
    ws_config({"notifications": {"channels": {"pagerduty": False}}})  # the switch wins
    assert channels.routes("sla_breached", critical, alert=True, paged=True) == ({"in_app"}, [])


def test_a_bad_queue_body_never_reaches_the_model(ada, db):
    with pytest.raises(ValidationFailed) as info:
        services.queue_create(actor=ada, data={"name": "x", "channels": [{"type": "pagerduty", "ref": ""}]})
    assert info.value.errors[0]["field"] == "channels[0].ref"
