"""In-app notifications: who is told of what, once; the /me routes."""

from __future__ import annotations

import pytest

from notifications import notifier
from notifications.models import Notification, NotificationDelivery, NotifierCursor
from tests import factories
from workitems import services


def told(user) -> list[tuple[str, int]]:
    return list(Notification.objects.filter(recipient=user).order_by("id").values_list("kind", "work_item_id"))


def test_an_assignment_tells_the_assignee_and_a_self_claim_tells_nobody(make_item, alice, carol, sam):
    given = make_item()
    services.work_item_assign(item_id=given.pk, actor=sam, user=alice)
    taken = make_item()
    services.work_item_claim(item_id=taken.pk, actor=carol)
    notifier.notify_pending()
    assert told(alice) == [("assigned", given.pk)]
    assert told(carol) == [] and told(sam) == []
    n = Notification.objects.get(recipient=alice)
    assert "by sam" in n.body and f"#{given.pk}" in n.title


def test_a_delegation_tells_the_new_holder_not_the_one_who_delegated(make_item, alice, carol):
    item = make_item()
    services.work_item_claim(item_id=item.pk, actor=alice)
    services.work_item_delegate(item_id=item.pk, actor=alice, user=carol)
    notifier.notify_pending()
    assert told(carol) == [("delegated", item.pk)] and told(alice) == []


def test_a_direct_item_tells_its_assignee_but_a_plain_create_tells_nobody(make_item, alice):
    make_item()
    direct = make_item(assignee="alice")
    notifier.notify_pending()
    assert told(alice) == [("assigned", direct.pk)]


def test_a_reservation_tells_the_reservee(svc, alice, team_a):
    from datetime import timedelta

    q = factories.queue("reserving", groups=[team_a], reservation_timeout=timedelta(minutes=5))
    item = factories.item(actor=svc, queue=q, assignee="alice")
    assert item.reserved_for_id == alice.pk
    notifier.notify_pending()
    assert ("reserved", item.pk) in told(alice)


def test_running_the_notifier_again_writes_nothing_twice(make_item, alice, sam):
    for _ in range(3):
        services.work_item_assign(item_id=make_item().pk, actor=sam, user=alice)
    assert notifier.notify_pending() > 0
    first = list(Notification.objects.values_list("id", flat=True))
    assert len(first) == 3
    assert notifier.notify_pending() == 0
    NotifierCursor.objects.update(last_id=0, scanned_to=0, gaps=[])  # read everything again
    notifier.notify_pending()
    assert list(Notification.objects.values_list("id", flat=True)) == first
    assert NotificationDelivery.objects.count() == 0  # email, slack, teams are off by default


def test_ids_missing_below_the_first_read_are_a_gap_dropped_on_the_next_run(make_item, alice, sam):
    """Earlier tests took ids 1..k (rolled back): the first run sees them as a gap; the next run,
    with no other transaction open on the database, drops it and the cursor catches up."""
    item = make_item()
    services.work_item_assign(item_id=item.pk, actor=sam, user=alice)
    notifier.notify_pending()
    cursor = NotifierCursor.objects.get()
    first = cursor.scanned_to
    if cursor.gaps:
        assert cursor.gaps[0][0] == 1 and cursor.last_id == 0
    notifier.notify_pending()
    cursor.refresh_from_db()
    assert cursor.gaps == [] and cursor.last_id == cursor.scanned_to == first


@pytest.mark.parametrize(
    "query, status",
    [("?unread=maybe", 400), ("?limit=0", 400), ("?limit=x", 400), ("?limit=100000", 400), ("?before=-1", 400)],
)
def test_bad_listing_parameters_are_400_problems(client_for, alice, query, status):
    resp = client_for(alice).get("/api/v1/me/notifications" + query)
    assert resp.status_code == status
    assert resp["Content-Type"].startswith("application/problem+json")


def test_the_listing_is_newest_first_with_the_unread_count_and_read_marks(client_for, make_item, alice, carol, sam):
    items = [make_item() for _ in range(3)]
    for it in items:
        services.work_item_assign(item_id=it.pk, actor=sam, user=alice)
    services.work_item_assign(item_id=make_item().pk, actor=sam, user=carol)
    notifier.notify_pending()
    api = client_for(alice)
    body = api.get("/api/v1/me/notifications").json()
    assert body["unread"] == 3 and [r["work_item"] for r in body["results"]] == [it.pk for it in reversed(items)]
    page = api.get("/api/v1/me/notifications?limit=2").json()
    assert len(page["results"]) == 2
    rest = api.get(f"/api/v1/me/notifications?limit=2&before={page['next_before']}").json()
    assert [r["work_item"] for r in rest["results"]] == [items[0].pk] and rest["next_before"] is None
    newest = body["results"][0]["id"]
    marked = api.post(f"/api/v1/me/notifications/{newest}/read")
    assert marked.status_code == 200 and marked.json()["read_at"] and marked.json()["unread"] == 2
    unread = api.get("/api/v1/me/notifications?unread=true").json()
    assert newest not in [r["id"] for r in unread["results"]] and len(unread["results"]) == 2
    carols = Notification.objects.get(recipient=carol).pk
    assert api.post(f"/api/v1/me/notifications/{carols}/read").status_code == 404  # not alice's
    assert api.post("/api/v1/me/notifications/999999/read").status_code == 404
    assert api.post("/api/v1/me/notifications/read-all").json() == {"marked": 2, "unread": 0}
    assert client_for(carol).get("/api/v1/me/notifications").json()["unread"] == 1  # untouched


def test_preferences_read_and_patch(client_for, alice):
    api = client_for(alice)
    prefs = api.get("/api/v1/me/preferences").json()
    assert prefs["email"]["sla_breached"] is True and set(prefs["email"]) >= {"assigned", "escalated"}
    resp = api.patch("/api/v1/me/preferences", {"email": {"assigned": False}}, format="json")
    assert resp.status_code == 200 and resp.json()["email"]["assigned"] is False
    assert api.get("/api/v1/me/preferences").json()["email"]["sla_at_risk"] is True


@pytest.mark.parametrize(
    "body, field",
    [
        ({"email": {"nonsense": True}}, "email.nonsense"),
        ({"email": {"assigned": "no"}}, "email.assigned"),
        ({"email": {"assigned": 0}}, "email.assigned"),
        ({"email": []}, "email"),
        ({"sms": {}}, "sms"),
        ([1, 2], ""),
    ],
)
def test_bad_preferences_are_400_naming_the_field_and_change_nothing(client_for, alice, body, field):
    api = client_for(alice)
    api.patch("/api/v1/me/preferences", {"email": {"escalated": False}}, format="json")
    resp = api.patch("/api/v1/me/preferences", body, format="json")
    assert resp.status_code == 400, resp.content
    assert field in [e["field"] for e in resp.json()["errors"]]
    assert api.get("/api/v1/me/preferences").json()["email"] == {
        **{t: True for t in ("assigned", "reserved", "delegated", "claimed", "sla_at_risk", "sla_breached")},
        **{"capacity_alert": True, "daily_summary": True},
        "escalated": False,
    }


def test_the_me_routes_need_a_login(db):
    from rest_framework.test import APIClient

    assert APIClient().get("/api/v1/me/notifications").status_code == 401
    assert APIClient().patch("/api/v1/me/preferences", {}, format="json").status_code == 401
