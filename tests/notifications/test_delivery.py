"""Email (a real SMTP server, aiosmtpd on loopback), Slack and Teams (an HTTP receiver on
loopback): sent after the change commits, retried with backoff, delivered exactly once."""

from __future__ import annotations

import json
import threading
from datetime import timedelta

import pytest
from django.db import connection, transaction

from events.models import OutboxEvent
from events.outbox import outbox_enqueue
from notifications import notifier, sender, tasks
from notifications.models import Notification, NotificationDelivery, NotifierCursor
from tests import factories
from tests.notifications.conftest import send_until_done
from workitems import services
from workitems.models import SlaState

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def sla_queue(team_a):
    return factories.queue("sla-q", groups=[team_a], sla=timedelta(hours=4))


def breach(svc, alice, sla_queue):
    item = factories.item(actor=svc, queue=sla_queue, assignee="alice")
    services.sla_scan(now=item.created_at + timedelta(hours=4, minutes=1))
    item.refresh_from_db()
    assert item.sla_state == SlaState.BREACHED
    return item


def test_a_breach_tells_the_assignee_and_the_supervisors_in_app_and_by_email(
    channels_on, smtp, svc, alice, sam, sla_queue
):
    channels_on(email=True)
    box = smtp()
    alice.email, sam.email = "alice@example.test", "sam@example.test"
    alice.save()
    sam.save()
    other_sup = factories.user("sue", roles=["supervisor"], email="sue@example.test")
    item = breach(svc, alice, sla_queue)
    tasks.run()
    send_until_done()
    breached = Notification.objects.filter(kind="sla_breached", work_item_id=item.pk)
    assert sorted(breached.values_list("recipient__username", flat=True)) == ["alice", "sam", "sue"]
    assert Notification.objects.filter(kind="sla_at_risk", work_item_id=item.pk).count() == 3
    mails = [(to, body) for to, body in box.messages if "SLA breached" in body]
    assert sorted(to[0] for to, _ in mails) == ["alice@example.test", "sam@example.test", "sue@example.test"]
    assert all(f"#{item.pk}" in body for _, body in mails)
    # the escalation levels' notify targets (default policy: assignee, then supervisors) too
    assert Notification.objects.filter(kind="escalated", work_item_id=item.pk, recipient=other_sup).exists()
    assert NotificationDelivery.objects.exclude(status="sent").count() == 0
    tasks.run()  # again: nothing new, nothing sent twice
    assert len([m for m in box.messages if "SLA breached" in m[1]]) == 3


def test_an_email_preference_off_keeps_the_in_app_notification(channels_on, smtp, client_for, svc, alice, sam):
    channels_on(email=True)
    box = smtp()
    alice.email = "alice@example.test"
    alice.save()
    client_for(alice).patch("/api/v1/me/preferences", {"email": {"assigned": False}}, format="json")
    q = factories.queue("pref-q", groups=list(alice.groups.all()))
    item = factories.item(actor=svc, queue=q)
    services.work_item_assign(item_id=item.pk, actor=sam, user=alice)
    tasks.run()
    assert Notification.objects.filter(recipient=alice, kind="assigned").count() == 1
    assert not NotificationDelivery.objects.filter(recipient="alice").exists() and box.messages == []


def test_a_refusing_smtp_server_is_retried_and_the_change_is_unaffected(channels_on, smtp, make_item, alice, sam):
    channels_on(email=True)
    box = smtp(refuse=2)
    alice.email = "alice@example.test"
    alice.save()
    item = services.work_item_assign(item_id=make_item().pk, actor=sam, user=alice)
    assert item.assignee_id == alice.pk  # committed before anything was sent
    tasks.run()
    d = NotificationDelivery.objects.get(channel="email")
    assert d.status == "failed" and d.attempts == 1 and "554" in d.last_error
    send_until_done()
    d.refresh_from_db()
    assert (d.status, d.attempts) == ("sent", 3)
    assert len(box.messages) == 1 and box.messages[0][0] == ["alice@example.test"]


def test_slack_answering_500_then_200_is_delivered_once_in_block_kit(
    channels_on, receiver, monkeypatch, svc, alice, sla_queue
):
    channels_on(slack=True)
    hook = receiver([500])
    monkeypatch.setenv("SLACK_WEBHOOK_URL", hook.url)
    item = breach(svc, alice, sla_queue)
    tasks.run()
    send_until_done()
    breached = [json.loads(r["body"]) for r in hook.requests if r["status"] == 200]
    kinds = [b["blocks"][2]["elements"][0]["text"].split(" · ")[1] for b in breached]
    assert sorted(kinds) == ["escalated", "escalated", "sla_at_risk", "sla_breached"]
    assert len(hook.requests) == 5  # one 500, then each of the four once
    assert all(b["blocks"][0]["type"] == "header" and f"#{item.pk}" in b["text"] for b in breached)
    rows = NotificationDelivery.objects.filter(channel="slack")
    assert set(rows.values_list("status", "recipient")) == {("sent", "slack:global")}
    assert sorted(rows.values_list("attempts", flat=True)) == [1, 1, 1, 2]
    assert hook.url not in "".join(rows.values_list("last_error", flat=True))


def test_teams_gets_a_message_card_on_the_queues_own_webhook(channels_on, receiver, monkeypatch, svc, alice, sla_queue):
    channels_on(teams=True)
    hook, global_hook = receiver(), receiver()
    monkeypatch.setenv("TEAMS_WEBHOOK_URL", global_hook.url)
    monkeypatch.setenv("TEAMS_WEBHOOK_URL__SLA_Q", hook.url)
    breach(svc, alice, sla_queue)
    tasks.run()
    send_until_done()
    cards = [json.loads(r["body"]) for r in hook.requests]
    assert len(cards) == 4 and global_hook.requests == []
    assert all(c["@type"] == "MessageCard" and c["sections"][0]["facts"][1]["value"] == "sla-q" for c in cards)
    assert {c["themeColor"] for c in cards if c["title"].startswith("SLA breached")} == {"D13438"}


def test_a_webhook_the_ssrf_guard_refuses_is_dead_at_once(monkeypatch, svc, alice, sla_queue, ws_config):
    ws_config({"notifications": {"channels": {"slack": True}}})  # private targets refused (the default)
    secret_url = "http://127.0.0.1:9/services/T000/B000/very-secret-token"
    monkeypatch.setenv("SLACK_WEBHOOK_URL", secret_url)
    breach(svc, alice, sla_queue)
    tasks.run()
    rows = NotificationDelivery.objects.filter(channel="slack")
    assert rows.count() == 4 and set(rows.values_list("status", "attempts")) == {("dead", 1)}
    errors = "".join(rows.values_list("last_error", flat=True))
    assert "SSRF" in errors and "very-secret-token" not in errors


def test_a_dead_delivery_is_sent_again_by_the_retry_action(channels_on, smtp, make_item, alice, sam, ws_config):
    ws_config({"notifications": {"channels": {"email": True}, "maxAttempts": 1}})
    smtp(refuse=1)
    alice.email = "alice@example.test"
    alice.save()
    services.work_item_assign(item_id=make_item().pk, actor=sam, user=alice)
    tasks.run()
    d = NotificationDelivery.objects.get()
    assert d.status == "dead"
    assert sender.retry([d.pk]) == 1
    sender.send_due()
    d.refresh_from_db()
    assert d.status == "sent"


def test_two_notifiers_at_once_write_each_notification_and_delivery_once(channels_on, make_item, alice, carol, sam):
    channels_on(email=True)
    for user in (alice, carol):
        user.email = f"{user.username}@example.test"
        user.save()
    for i in range(20):
        services.work_item_assign(item_id=make_item().pk, actor=sam, user=alice if i % 2 else carol)
    barrier, errors = threading.Barrier(2), []

    def run():
        try:
            barrier.wait()
            notifier.notify_until_idle()
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert Notification.objects.count() == 20 and NotificationDelivery.objects.count() == 20
    notifier.notify_until_idle()
    assert Notification.objects.count() == 20 and NotificationDelivery.objects.count() == 20


def test_an_event_committed_after_a_later_one_is_not_skipped(make_item, alice, sam):
    """The outbox id is taken at insert, not at commit: a row below one already read comes later."""
    item = make_item()
    notifier.notify_until_idle()
    held, release = threading.Event(), threading.Event()

    def slow_change():
        with transaction.atomic():
            snapshot = {"id": item.pk, "assignee": "alice", "queue": item.queue.name, "title": "slow"}
            outbox_enqueue(
                event_type="workitem.assigned.v1",
                aggregate_id=item.pk,
                sequence=1000,
                payload={"work_item": snapshot, "transition": {"actor": "sam"}},
            )
            held.set()
            release.wait(10)
        connection.close()

    t = threading.Thread(target=slow_change)
    t.start()
    assert held.wait(10)
    services.work_item_assign(item_id=make_item().pk, actor=sam, user=alice)  # a later id, committed first
    notifier.notify_pending()
    notifier.notify_pending()
    cursor = NotifierCursor.objects.get()
    slow_id = OutboxEvent.objects.order_by("-id").first().id - 1
    assert cursor.last_id < slow_id <= cursor.scanned_to  # held below the missing id
    assert [n.title for n in Notification.objects.filter(recipient=alice)] == [
        Notification.objects.get(recipient=alice).title
    ]
    release.set()
    t.join()
    notifier.notify_pending()
    titles = sorted(Notification.objects.filter(recipient=alice).values_list("title", flat=True))
    assert len(titles) == 2 and any("slow" in x for x in titles)
    cursor.refresh_from_db()
    assert cursor.gaps == [] and cursor.last_id == cursor.scanned_to
