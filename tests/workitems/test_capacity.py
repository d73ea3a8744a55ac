"""Queue capacity: `max_open` and `overflow_queue` (validated, shown), the capacity check
(one alert per crossing of 90%, reset below it; the excess moved, lowest priority first,
then newest, through `move`), the beat task and POST /queues/{name}/rebalance."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from audit.models import AuditRecord
from events.models import OutboxEvent
from tests import factories
from tests.workitems.test_admin import QUEUE_FORM, saved
from tests.workitems.test_concurrency import race
from workitems import queues, services, tasks
from workitems.errors import NotAllowed, ValidationFailed
from workitems.models import Queue, State, WorkItem


@pytest.fixture
def overflow(team_a):
    return factories.queue("overflow", groups=[team_a])


@pytest.fixture
def full(team_a, overflow):
    return factories.queue("full", groups=[team_a], max_open=10, overflow_queue=overflow)


def fill(queue, svc, priorities):
    return [factories.item(actor=svc, queue=queue, priority=p) for p in priorities]


def alerts(queue):
    return list(OutboxEvent.objects.filter(event_type="queue.capacity_alert.v1", aggregate_id=str(queue.pk)))


def client_for(user) -> APIClient:
    client = APIClient(raise_request_exception=False)
    client.force_authenticate(user)
    return client


def test_crossing_90_percent_alerts_once_per_crossing(svc, full):
    fill(full, svc, [50] * 8)
    assert services.queue_rebalance(queue="full")["alerted"] is False  # 8 of 10: below 90%
    items = fill(full, svc, [50])  # 9 of 10: at 90%
    assert services.queue_rebalance(queue="full")["alerted"] is True
    for _ in range(3):
        assert services.queue_rebalance(queue="full")["alerted"] is False  # still above: no second alert
    (event,) = alerts(full)
    assert event.aggregate_type == "queue"
    assert (event.payload["queue"], event.payload["open"], event.payload["max_open"]) == ("full", 9, 10)
    record = AuditRecord.objects.get(stream=f"queue:{full.pk}", action="queue.capacity_alert")
    assert record.data["open"] == 9 and record.actor_id is None
    full.refresh_from_db()
    assert full.capacity_alerted_at is not None

    # dropping below 90% resets the crossing; the next crossing alerts again
    services.work_item_cancel(item_id=items[0].pk, actor=svc, reason="done elsewhere")
    assert services.queue_rebalance(queue="full")["alerted"] is False
    full.refresh_from_db()
    assert full.capacity_alerted_at is None
    fill(full, svc, [50])
    assert services.queue_rebalance(queue="full")["alerted"] is True
    assert len(alerts(full)) == 2


def test_rebalance_moves_exactly_the_excess_lowest_priority_first_then_newest(svc, alice, full, overflow):
    # 14 open in a queue of 10: 4 must go. Held and reserved items stay whatever their priority.
    low_old, low_new = fill(full, svc, [5, 5])
    held = services.work_item_claim(item_id=fill(full, svc, [1])[0].pk, actor=alice)  # lowest, but claimed
    mid_old, mid_new, mid_newest = fill(full, svc, [20, 20, 20])
    high = fill(full, svc, [90] * 8)
    assert WorkItem.objects.filter(queue=full, state__in=["OFFERED", "ASSIGNED"]).count() == 14

    result = services.queue_rebalance(queue="full")
    assert result["moved"] == [low_new.pk, low_old.pk, mid_newest.pk, mid_new.pk]
    assert result["open"] == 10
    assert set(WorkItem.objects.filter(queue=overflow).values_list("id", flat=True)) == set(result["moved"])
    assert WorkItem.objects.get(pk=held.pk).queue_id == full.pk
    assert WorkItem.objects.get(pk=mid_old.pk).queue_id == full.pk
    assert all(WorkItem.objects.get(pk=i.pk).queue_id == full.pk for i in high)
    # each through the move command: audited and evented as the system
    for item_id in result["moved"]:
        record = AuditRecord.objects.filter(work_item_id=item_id).order_by("-seq").first()
        assert (record.action, record.actor_id, record.data["to_queue"]) == ("move", None, "overflow")
        assert "over capacity" in record.data["reason"]
        assert OutboxEvent.objects.filter(aggregate_id=str(item_id), event_type="workitem.moved.v1").count() == 1
    # at the limit now: nothing more moves
    assert services.queue_rebalance(queue="full")["moved"] == []


def test_without_unclaimed_items_or_an_overflow_queue_nothing_moves(svc, alice, team_a):
    lone = factories.queue("lone", groups=[team_a], max_open=2)
    fill(lone, svc, [1, 2, 3])
    result = services.queue_rebalance(queue="lone")
    assert (result["moved"], result["alerted"], result["open"]) == ([], True, 3)
    held_q = factories.queue("held", groups=[team_a], max_open=1, overflow_queue=lone)
    for it in fill(held_q, svc, [1, 2]):
        services.work_item_claim(item_id=it.pk, actor=alice)
    assert services.queue_rebalance(queue="held")["moved"] == []  # only claimed work is over the limit


def test_the_capacity_fields_are_validated_and_shown(ada, overflow):
    q = services.queue_create(actor=ada, data={"name": "capped", "max_open": 5, "overflow_queue": "overflow"})
    snap = queues.queue_snapshot(q)
    assert (snap["max_open"], snap["overflow_queue"]) == (5, "overflow")
    for body, field in (
        ({"max_open": 0}, "max_open"),
        ({"max_open": -3}, "max_open"),
        ({"max_open": True}, "max_open"),
        ({"max_open": "5"}, "max_open"),
        ({"max_open": 2.5}, "max_open"),
        ({"overflow_queue": "nowhere"}, "overflow_queue"),
        ({"overflow_queue": 3}, "overflow_queue"),
        ({"overflow_queue": "capped"}, "overflow_queue"),  # itself
    ):
        with pytest.raises(ValidationFailed) as info:
            services.queue_update(actor=ada, name="capped", data=body)
        assert [e["field"] for e in info.value.errors] == [field], body
    q.refresh_from_db()
    assert (q.max_open, q.overflow_queue_id) == (5, overflow.pk)
    q = services.queue_update(actor=ada, name="capped", data={"max_open": None, "overflow_queue": None})
    assert (q.max_open, q.overflow_queue_id) == (None, None)
    record = AuditRecord.objects.filter(stream=f"queue:{q.pk}", action="queue.update").order_by("-seq").first()
    assert record.data["changes"]["max_open"] == [5, None]


def test_the_beat_task_checks_every_capped_queue(svc, full, overflow):
    fill(full, svc, [10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 99])
    assert tasks.capacity_check.apply().get() == 1
    assert WorkItem.objects.filter(queue=overflow, priority=10).count() == 1
    assert len(alerts(full)) == 1
    assert tasks.capacity_check.apply().get() == 0
    assert len(alerts(full)) == 1


def test_rebalance_over_rest(svc, sam, alice, ada, full, overflow):
    fill(full, svc, [50] * 11)
    resp = client_for(alice).post("/api/v1/queues/full/rebalance")
    assert resp.status_code == 403, resp.content
    assert client_for(sam).post("/api/v1/queues/nowhere/rebalance").status_code == 404
    assert client_for(sam).post("/api/v1/queues/full/rebalance", [1], format="json").status_code == 400
    assert WorkItem.objects.filter(queue=overflow).count() == 0  # refusals moved nothing
    resp = client_for(sam).post("/api/v1/queues/full/rebalance")
    assert resp.status_code == 200, resp.content
    body = resp.json()
    assert (body["queue"], body["open"], body["max_open"], body["alerted"], len(body["moved"])) == (
        "full",
        10,
        10,
        True,
        1,
    )
    assert client_for(ada).post("/api/v1/queues/full/rebalance").json()["moved"] == []
    resp = client_for(ada).get("/api/v1/queues/full")
    assert (resp.json()["max_open"], resp.json()["overflow_queue"]) == (10, "overflow")


def test_only_supervisors_admins_and_the_system_rebalance(alice, svc, full, overflow):
    fill(full, svc, [50] * 12)
    for actor in (alice, svc):
        with pytest.raises(NotAllowed):
            services.queue_rebalance(queue="full", actor=actor)
    assert Queue.objects.get(pk=full.pk).capacity_alerted_at is None and alerts(full) == []
    assert WorkItem.objects.filter(queue=overflow).count() == 0
    assert len(services.queue_rebalance(queue="full", actor=None)["moved"]) == 2
    assert all(i.state == State.OFFERED for i in WorkItem.objects.filter(queue=overflow))


@pytest.mark.django_db(transaction=True)
def test_concurrent_checks_move_the_excess_once_and_alert_once(team_a):
    """Four checks of one over-full queue at once (threads, own connections): between them
    exactly the excess moves and the crossing alerts once."""
    svc = factories.user("svc-cc", roles=["service"])
    overflow = factories.queue("overflow-cc", groups=[team_a])
    full = factories.queue("full-cc", groups=[team_a], max_open=20, overflow_queue=overflow)
    fill(full, svc, [i % 7 for i in range(32)])
    outcomes = race(4, lambda _: services.queue_rebalance(queue="full-cc"))
    assert all(kind == "ok" for kind, _ in outcomes), outcomes
    results = [r for _, r in outcomes]
    moved = [i for r in results for i in r["moved"]]
    assert len(moved) == len(set(moved)) == 12
    assert WorkItem.objects.filter(queue=overflow).count() == 12
    assert sum(r["alerted"] for r in results) == 1 and len(alerts(full)) == 1
    # the lowest priorities went: everything left has a priority at least as high as any moved
    moved_max = max(WorkItem.objects.filter(pk__in=moved).values_list("priority", flat=True))
    left_min = min(WorkItem.objects.filter(queue=full).values_list("priority", flat=True))
    assert moved_max <= left_min


def test_the_admin_sets_the_capacity_through_the_queue_command(admin_client, overflow, team_a):
    form = {**QUEUE_FORM, "candidate_groups": [team_a.pk], "max_open": "50", "overflow_queue": overflow.pk}
    saved(admin_client.post("/admin/workitems/queue/add/", form))
    billing = Queue.objects.get(name="billing")
    assert (billing.max_open, billing.overflow_queue_id) == (50, overflow.pk)
    record = AuditRecord.objects.get(stream=f"queue:{billing.pk}", action="queue.create")
    assert (record.data["max_open"], record.data["overflow_queue"]) == (50, "overflow")
    # the command's refusal lands on the form's field and writes nothing
    resp = admin_client.post(f"/admin/workitems/queue/{billing.pk}/change/", {**form, "overflow_queue": billing.pk})
    assert resp.status_code == 200
    assert "overflow_queue" in resp.context["adminform"].form.errors
    billing.refresh_from_db()
    assert billing.overflow_queue_id == overflow.pk
