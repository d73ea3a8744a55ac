"""The SLA clock and the scan: deadlines in business time, sla_state through the lifecycle,
the clock stopping while SUSPENDED, escalation levels fired once each through the service
layer (audited, evented), features.escalation honoured, and racing scanners."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from audit.models import AuditRecord
from events.models import OutboxEvent
from tests import factories
from workitems import services
from workitems.models import Calendar, SlaState, State, WorkItem


def events_of(item) -> list[str]:
    return list(
        OutboxEvent.objects.filter(aggregate_id=str(item.pk)).order_by("sequence").values_list("event_type", flat=True)
    )


@pytest.fixture
def sla_queue(team_a):
    return factories.queue("sla-q", groups=[team_a], sla=timedelta(hours=4))


def test_a_new_item_is_on_track_with_its_deadline_and_next_look(make_item, svc, sla_queue):
    item = factories.item(actor=svc, queue=sla_queue)
    assert item.sla_state == SlaState.ON_TRACK
    assert item.due_at - item.created_at == timedelta(hours=4)
    assert item.sla_next_at == item.created_at + timedelta(hours=3)  # at_risk_ratio 0.75
    plain = make_item()  # a queue without SLA: no clock
    assert plain.sla_state == SlaState.NONE and plain.sla_next_at is None


def test_a_calendar_queue_measures_the_deadline_in_working_hours(svc, team_a):
    cal = Calendar(name="office", time_zone="Europe/Berlin", working_hours={"mon": [["09:00", "17:00"]]})
    cal.full_clean()
    cal.save()
    q = factories.queue("office-q", groups=[team_a], sla=timedelta(hours=4), calendar=cal)
    with time_machine.travel("2026-12-07T15:00:00+01:00", tick=False):  # Monday 15:00 Berlin
        item = factories.item(actor=svc, queue=q)
    # 2 h left on Monday, the next working Monday is 14 December: 09:00 + 2 h
    assert item.due_at == timezone.datetime.fromisoformat("2026-12-14T11:00:00+01:00")


def test_the_scan_marks_at_risk_then_breached_once_each_and_applies_the_default_policy(svc, alice, sla_queue, team_a):
    esc = factories.queue("sla-escalations", groups=[team_a])
    sla_queue.escalation_queue = esc
    sla_queue.save()
    item = factories.item(actor=svc, queue=sla_queue)
    start = item.created_at
    assert services.sla_scan(now=start + timedelta(hours=2)) == 0  # nothing due yet
    assert services.sla_scan(now=start + timedelta(hours=3, minutes=1)) == 1
    item.refresh_from_db()
    assert item.sla_state == SlaState.AT_RISK and item.sla_level == 1 and item.escalation_level == 0
    assert services.sla_scan(now=start + timedelta(hours=3, minutes=2)) == 0  # each step once
    assert services.sla_scan(now=start + timedelta(hours=4, minutes=1)) == 1
    item.refresh_from_db()
    assert item.sla_state == SlaState.BREACHED and item.breached_at == item.due_at
    assert item.sla_level == 2 and item.escalation_level == 1 and item.queue == esc  # unclaimed: moved
    assert item.sla_next_at is None  # nothing more can happen
    assert services.sla_scan(now=start + timedelta(days=1)) == 0
    assert events_of(item) == [
        "workitem.created.v1",
        "workitem.sla_at_risk.v1",
        "workitem.escalated.v1",
        "workitem.sla_breached.v1",
        "workitem.escalated.v1",
    ]
    records = AuditRecord.objects.filter(work_item=item).exclude(action="create").order_by("seq")
    assert all(r.actor_id is None for r in records)
    level2 = records.filter(action="escalate").last()
    assert level2.data["sla_level"] == 2 and level2.data["to_queue"] == "sla-escalations"
    assert "supervisors" in level2.data["notify"]


def test_a_custom_policy_raises_priority_and_reassigns_a_held_item(svc, alice, sla_queue, team_a):
    target = factories.queue("sla-reassign", groups=[team_a])
    sla_queue.escalation_policy = [
        {"at": 0.5, "actions": [{"type": "raise_priority", "by": 30}]},
        {"at": 1.0, "actions": [{"type": "reassign", "queue": "sla-reassign"}]},
    ]
    sla_queue.save()
    item = factories.item(actor=svc, queue=sla_queue, priority=80)
    services.work_item_claim(item_id=item.pk, actor=alice)
    services.sla_scan(now=item.created_at + timedelta(hours=2, minutes=1))
    item.refresh_from_db()
    assert item.priority == 100  # capped
    services.sla_scan(now=item.created_at + timedelta(hours=4, minutes=1))
    item.refresh_from_db()
    assert item.queue == target and item.state == State.OFFERED and item.assignee is None


def test_suspended_time_does_not_count(svc, sam, sla_queue):
    item = factories.item(actor=svc, queue=sla_queue)
    due = item.due_at
    t0 = item.created_at
    with time_machine.travel(t0 + timedelta(hours=1), tick=False):
        services.work_item_suspend(item_id=item.pk, actor=sam, reason="waiting for the customer")
    item.refresh_from_db()
    assert item.sla_next_at is None  # the scan leaves it alone
    assert services.sla_scan(now=t0 + timedelta(hours=5)) == 0
    with time_machine.travel(t0 + timedelta(hours=6), tick=False):
        item = services.work_item_resume(item_id=item.pk, actor=sam)
    assert item.due_at == due + timedelta(hours=5)
    assert item.sla_state == SlaState.ON_TRACK
    resume = AuditRecord.objects.filter(work_item=item, action="resume").get()
    assert resume.data["sla_paused_seconds"] == 5 * 3600 and len(resume.data["due_at"]) == 2


def test_terminal_items_are_met_or_missed(svc, alice, sla_queue):
    early = factories.item(actor=svc, queue=sla_queue)
    late = factories.item(actor=svc, queue=sla_queue)
    for it in (early, late):
        services.work_item_claim(item_id=it.pk, actor=alice)
        services.work_item_start(item_id=it.pk, actor=alice)
    done = services.work_item_complete(item_id=early.pk, actor=alice, result={})
    assert done.sla_state == SlaState.MET and done.sla_next_at is None
    with time_machine.travel(late.due_at + timedelta(minutes=5), tick=False):
        missed = services.work_item_complete(item_id=late.pk, actor=alice, result={})
    assert missed.sla_state == SlaState.MISSED


def test_escalation_off_marks_states_but_fires_no_level(svc, sla_queue, ws_config):
    ws_config({"features": {"escalation": False}})
    item = factories.item(actor=svc, queue=sla_queue)
    services.sla_scan(now=item.created_at + timedelta(hours=4, minutes=1))
    item.refresh_from_db()
    assert item.sla_state == SlaState.BREACHED and item.sla_level == 0 and item.escalation_level == 0
    assert "workitem.escalated.v1" not in events_of(item)


def test_filters_by_sla_state(api_client_for, svc, sla_queue, sam):
    a = factories.item(actor=svc, queue=sla_queue)
    b = factories.item(actor=svc, queue=sla_queue)
    services.sla_scan(now=a.created_at + timedelta(hours=3, minutes=30))
    assert WorkItem.objects.get(pk=a.pk).sla_state == SlaState.AT_RISK
    client = api_client_for(sam)
    ids = {r["id"] for r in client.get("/api/v1/workitems?at_risk=true").json()["results"]}
    assert {a.pk, b.pk} <= ids
    body = client.get(f"/api/v1/workitems/{a.pk}").json()
    assert body["sla_state"] == "at_risk" and body["breached_at"] is None
    assert client.get("/api/v1/workitems?breached=true").json()["results"] == []


@pytest.fixture
def api_client_for():
    from rest_framework.test import APIClient

    def make(user):
        client = APIClient()
        client.force_authenticate(user)
        return client

    return make


def test_calendars_api_and_a_queue_using_one(api_client_for, ada, sam, svc, team_a):
    admin, viewer = api_client_for(ada), api_client_for(sam)
    body = {"name": "berlin", "time_zone": "Europe/Berlin", "working_hours": {"mon": [["09:00", "17:00"]]}}
    resp = admin.post("/api/v1/calendars", body, format="json")
    assert resp.status_code == 201, resp.content
    assert resp["Location"].endswith("/api/v1/calendars/berlin")
    assert viewer.post("/api/v1/calendars", {**body, "name": "x"}, format="json").status_code == 403
    bad = admin.post(
        "/api/v1/calendars",
        {**body, "name": "bad", "time_zone": "Mars/Base", "holidays": ["2026-02-30"]},
        format="json",
    )
    assert bad.status_code == 400
    assert {"time_zone", "holidays"} <= {e["field"] for e in bad.json()["errors"]}
    assert not Calendar.objects.filter(name="bad").exists()
    patched = admin.patch("/api/v1/calendars/berlin", {"holidays": ["2026-12-24"]}, format="json")
    assert patched.status_code == 200 and patched.json()["holidays"] == ["2026-12-24"]
    assert [c["name"] for c in viewer.get("/api/v1/calendars").json()] == ["berlin"]
    assert AuditRecord.objects.filter(action__in=["calendar.create", "calendar.update"]).count() == 2
    q = admin.post(
        "/api/v1/queues",
        {
            "name": "cal-q",
            "candidate_groups": ["team-a"],
            "sla": "PT4H",
            "calendar": "berlin",
            "at_risk_ratio": 0.5,
            "escalation_policy": [{"at": 1.0, "actions": [{"type": "raise_priority", "by": 10}]}],
        },
        format="json",
    )
    assert q.status_code == 201, q.content
    assert q.json()["calendar"] == "berlin" and q.json()["at_risk_ratio"] == 0.5
    for field, value in [
        ("calendar", "nowhere"),
        ("at_risk_ratio", 1.5),
        ("escalation_policy", [{"at": 1.0, "actions": [{"type": "teleport"}]}]),
        ("escalation_policy", [{"at": 1.0, "actions": [{"type": "reassign", "queue": "missing-q"}]}]),
        ("escalation_policy", [{"at": -1, "actions": [{"type": "notify"}]}]),
    ]:
        resp = admin.patch("/api/v1/queues/cal-q", {field: value}, format="json")
        assert resp.status_code == 400, (field, value, resp.content)
        assert any(e["field"].startswith(field) for e in resp.json()["errors"]), resp.json()
