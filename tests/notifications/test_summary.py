"""The daily summary: per queue, to its supervisors, at the configured time of day, with
yesterday's figures; once per (queue, day, recipient) however often or concurrently it runs."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
import time_machine

from notifications import summary, tasks
from notifications.models import Notification, NotificationDelivery, QueueSummary
from tests import factories
from tests.notifications.conftest import send_until_done
from tests.workitems.test_concurrency import race
from workitems import services
from workitems.models import WorkItem

pytestmark = pytest.mark.django_db(transaction=True)
BERLIN = {"notifications": {"summary": {"timeOfDay": "07:30", "timeZone": "Europe/Berlin"}}}


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


@pytest.fixture
def leads(db):
    return factories.group("claims-leads")


@pytest.fixture
def claims(team_a, leads):
    q = factories.queue("claims", groups=[team_a], sla=timedelta(hours=4))
    q.supervisor_groups.set([leads])
    return q


def day_of_work(svc, alice, claims):
    """On Monday 30 November (Berlin): one item met, one missed, one breached and still open,
    one open on track; plus one item completed on Sunday (not counted)."""
    with time_machine.travel("2026-11-29T10:00:00+01:00", tick=False):
        old = factories.item(actor=svc, queue=claims, assignee="alice")
        services.work_item_start(item_id=old.pk, actor=alice)
        services.work_item_complete(item_id=old.pk, actor=alice, result={})
    with time_machine.travel("2026-11-30T08:00:00+01:00", tick=False):
        met, missed, late = (factories.item(actor=svc, queue=claims, assignee="alice") for _ in range(3))
    with time_machine.travel("2026-11-30T09:00:00+01:00", tick=False):
        services.work_item_start(item_id=met.pk, actor=alice)
        services.work_item_complete(item_id=met.pk, actor=alice, result={})
    services.sla_scan(now=at("2026-11-30T12:01:00+01:00"))  # missed and late breach
    with time_machine.travel("2026-11-30T15:00:00+01:00", tick=False):
        services.work_item_start(item_id=missed.pk, actor=alice)
        services.work_item_complete(item_id=missed.pk, actor=alice, result={})
    with time_machine.travel("2026-12-01T06:00:00+01:00", tick=False):
        factories.item(actor=svc, queue=claims)  # open, on track


def test_the_summary_waits_for_its_time_then_tells_the_supervisors_once(
    ws_config, smtp, svc, alice, sam, claims, leads
):
    ws_config({**BERLIN, "notifications": {**BERLIN["notifications"], "channels": {"email": True}}})
    box = smtp()
    lena = factories.user("lena", roles=["supervisor"], groups=[leads], email="lena@example.test")
    day_of_work(svc, alice, claims)
    assert summary.summarise(now=at("2026-12-01T07:29:00+01:00")) == 0  # before 07:30 in Berlin
    assert QueueSummary.objects.count() == 0
    assert summary.summarise(now=at("2026-12-01T07:31:00+01:00")) == 1
    s = QueueSummary.objects.get()
    assert (s.queue, str(s.day)) == ("claims", "2026-11-30")
    assert (s.open, s.overdue, s.breached, s.completed, s.met, s.sla_compliance) == (2, 1, 2, 2, 1, 0.5)
    (note,) = Notification.objects.filter(kind="daily_summary")
    assert (note.recipient, note.queue, note.work_item_id) == (lena, "claims", None)  # not sam
    assert "2 open, 1 overdue" in note.body and "2 breached" in note.body and "50.0%" in note.body
    # again, later the same day and the next minute: nothing more
    assert summary.summarise(now=at("2026-12-01T07:32:00+01:00")) == 0
    assert summary.summarise(now=at("2026-12-01T23:59:00+01:00")) == 0
    send_until_done()
    mails = [body for to, body in box.messages if "Daily summary" in body]
    assert len(mails) == 1 and box.messages[0][0] == ["lena@example.test"]
    # the next day summarises Tuesday
    assert summary.summarise(now=at("2026-12-02T08:00:00+01:00")) == 1
    assert QueueSummary.objects.filter(day="2026-12-01").exists()


def test_a_quiet_queue_is_recorded_and_tells_nobody(ws_config, sam, team_a):
    ws_config(BERLIN)
    factories.queue("quiet", groups=[team_a])
    assert summary.summarise(now=at("2026-12-01T09:00:00+01:00")) == 1
    assert QueueSummary.objects.get().open == 0
    assert not Notification.objects.exists()


def test_off_or_an_inactive_queue_sends_nothing(ws_config, svc, sam, team_a):
    q = factories.queue("busy", groups=[team_a])
    factories.item(actor=svc, queue=q)
    ws_config({"notifications": {"summary": {"enabled": False}}})
    assert summary.summarise(now=at("2026-12-01T23:00:00+00:00")) == 0
    ws_config({})
    q.active = False
    q.save()
    assert summary.summarise(now=at("2026-12-01T23:00:00+00:00")) == 0


def test_runs_at_once_summarise_each_queue_once_per_recipient(
    ws_config, svc, sam, team_a, channels_on, receiver, monkeypatch
):
    channels_on(slack=True)
    hook = receiver()
    monkeypatch.setenv("SLACK_WEBHOOK_URL", hook.url)
    for name in ("one", "two", "three"):
        factories.item(actor=svc, queue=factories.queue(name, groups=[team_a]))
    factories.user("sue", roles=["supervisor"])
    outcomes = race(3, lambda _: summary.summarise(now=at("2026-12-01T09:00:00+00:00")))
    assert all(kind == "ok" for kind, _ in outcomes), outcomes
    assert sum(n for _, n in outcomes) == 3
    assert QueueSummary.objects.count() == 3
    assert Notification.objects.filter(kind="daily_summary").count() == 6  # 3 queues × sam, sue
    assert NotificationDelivery.objects.filter(kind="daily_summary", channel="slack").count() == 3
    send_until_done()
    assert len(hook.requests) == 3


def test_the_beat_task_runs_it(ws_config, svc, sam, team_a):
    ws_config({"notifications": {"summary": {"timeOfDay": "00:00"}}})
    factories.item(actor=svc, queue=factories.queue("q1", groups=[team_a]))
    assert tasks.daily_summary_task.apply().get() == 1
    assert tasks.daily_summary_task.apply().get() == 0
    assert WorkItem.objects.count() == 1


def test_the_admin_lists_the_summaries(admin_client, ws_config, svc, team_a):
    ws_config({"notifications": {"summary": {"timeOfDay": "00:00"}}})
    factories.item(actor=svc, queue=factories.queue("listed-q", groups=[team_a]))
    summary.summarise()
    page = admin_client.get("/admin/notifications/queuesummary/")
    assert page.status_code == 200 and "listed-q" in page.content.decode()
