"""Push with acceptance: reserve → accept / reject / time out → next candidate → plain OFFERED.
Every step audited and evented; the same over the REST API."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from audit.models import AuditRecord
from events.models import OutboxEvent
from tests import factories
from workitems import services, tasks
from workitems.errors import AlreadyClaimed, ConstraintViolated, InvalidTransition, NotAllowed
from workitems.models import State, WorkItem


@pytest.fixture
def trio(team_a):
    return [factories.user(f"r{i}", roles=["worker"], groups=[team_a]) for i in range(3)]


@pytest.fixture
def res_queue(team_a):
    return factories.queue("reserve", groups=[team_a], strategy="round_robin", reservation_timeout=timedelta(minutes=5))


def audit_of(item) -> list[tuple]:
    return list(
        AuditRecord.objects.filter(work_item_id=item.pk)
        .order_by("seq")
        .values_list("action", "actor_username", "from_state", "to_state")
    )


def events_of(item) -> list[str]:
    return list(
        OutboxEvent.objects.filter(aggregate_type="workitem", aggregate_id=str(item.pk))
        .order_by("sequence")
        .values_list("event_type", flat=True)
    )


def lapse(item) -> None:
    """Let the reservation's time run out (the timeout job looks at reserved_until)."""
    WorkItem.objects.filter(pk=item.pk).update(reserved_until=timezone.now() - timedelta(seconds=1))


def test_create_reserves_for_the_chosen_user_for_the_queue_timeout(svc, res_queue, trio):
    before = timezone.now()
    item = factories.item(actor=svc, queue=res_queue)
    assert item.state == State.OFFERED and item.assignee is None and item.reserved_for == trio[0]
    assert before + timedelta(minutes=5) <= item.reserved_until <= timezone.now() + timedelta(minutes=5)
    create = AuditRecord.objects.get(work_item=item, action="create")
    assert create.data["route"] == "reserve" and create.data["reserved_for"] == "r0"
    # only the reservee may take it meanwhile
    with pytest.raises(AlreadyClaimed):
        services.work_item_claim(item_id=item.pk, actor=trio[1])
    assert services.work_item_claim_next(actor=trio[1]) is None
    with pytest.raises(NotAllowed):
        services.work_item_accept(item_id=item.pk, actor=trio[1])
    with pytest.raises(NotAllowed):
        services.work_item_reject(item_id=item.pk, actor=trio[2])
    assert services.work_item_claim_next(actor=trio[0]).pk == item.pk  # the reservee may pull it


def test_accept_assigns_it_audited_and_evented(svc, res_queue, trio):
    item = factories.item(actor=svc, queue=res_queue)
    item = services.work_item_accept(item_id=item.pk, actor=trio[0])
    assert item.state == State.ASSIGNED and item.assignee == trio[0]
    assert item.reserved_for is None and item.reserved_until is None
    assert audit_of(item) == [("create", "svc", "", "OFFERED"), ("accept", "r0", "OFFERED", "ASSIGNED")]
    assert events_of(item) == ["workitem.created.v1", "workitem.accepted.v1"]
    with pytest.raises(InvalidTransition):
        services.work_item_accept(item_id=item.pk, actor=trio[0])


def test_reject_moves_on_excluding_every_rejecter_then_plain_offered(svc, res_queue, trio):
    item = factories.item(actor=svc, queue=res_queue)
    item = services.work_item_reject(item_id=item.pk, actor=trio[0], reason="on leave tomorrow")
    assert item.reserved_for == trio[1] and item.declined_by == [trio[0].pk]
    item = services.work_item_reject(item_id=item.pk, actor=trio[1])
    assert item.reserved_for == trio[2]  # never back to r0, though round robin would wrap
    item = services.work_item_reject(item_id=item.pk, actor=trio[2])
    assert item.state == State.OFFERED and item.reserved_for is None and item.reserved_until is None
    assert sorted(item.declined_by) == sorted(u.pk for u in trio)
    assert audit_of(item) == [
        ("create", "svc", "", "OFFERED"),
        ("reject", "r0", "OFFERED", "OFFERED"),
        ("reserve", "", "OFFERED", "OFFERED"),
        ("reject", "r1", "OFFERED", "OFFERED"),
        ("reserve", "", "OFFERED", "OFFERED"),
        ("reject", "r2", "OFFERED", "OFFERED"),
    ]
    assert AuditRecord.objects.get(work_item=item, action="reject", actor_username="r0").data["reason"] == (
        "on leave tomorrow"
    )
    assert events_of(item) == [
        "workitem.created.v1",
        "workitem.rejected.v1",
        "workitem.reserved.v1",
        "workitem.rejected.v1",
        "workitem.reserved.v1",
        "workitem.rejected.v1",
        "workitem.unassigned.v1",
    ]
    last = OutboxEvent.objects.filter(aggregate_id=str(item.pk)).order_by("-sequence").first()
    assert last.payload["transition"]["reason"] == "excluded"
    # plainly OFFERED now: any candidate may pull it, rejecters included
    assert services.work_item_claim_next(actor=trio[1]).pk == item.pk


def test_timeout_job_moves_the_reservation_on(svc, res_queue, trio):
    item = factories.item(actor=svc, queue=res_queue)
    not_due = factories.item(actor=svc, queue=res_queue)  # reserved for r1, still in time
    lapse(item)
    assert tasks.expire_reservations() == 1  # the Celery job, run in-process
    item.refresh_from_db()
    assert item.reserved_for == trio[2] and item.declined_by == [trio[0].pk]  # r1 was next in turn
    not_due.refresh_from_db()
    assert not_due.reserved_for == trio[1]
    reject = AuditRecord.objects.get(work_item=item, action="reject")
    assert reject.actor_id is None and reject.channel == "system"
    assert reject.data["reason"] == "reservation timed out" and reject.data["reservee"] == "r0"
    reserve = AuditRecord.objects.get(work_item=item, action="reserve")
    assert reserve.data["assignee"] == "r2" and reserve.data["strategy"] == "round_robin"
    assert events_of(item) == ["workitem.created.v1", "workitem.rejected.v1", "workitem.reserved.v1"]
    assert services.work_items_expire_reservations() == 0  # nothing else is due


def test_timeouts_after_every_candidate_leave_it_offered(svc, res_queue, trio):
    item = factories.item(actor=svc, queue=res_queue)
    for _ in trio:
        lapse(item)
        assert services.work_items_expire_reservations() == 1
        item.refresh_from_db()
    assert item.state == State.OFFERED and item.reserved_for is None
    assert sorted(item.declined_by) == sorted(u.pk for u in trio)
    assert services.work_items_expire_reservations() == 0
    assert events_of(item)[-1] == "workitem.unassigned.v1"


def test_an_accepted_or_renewed_reservation_is_not_expired(svc, res_queue, trio):
    item = factories.item(actor=svc, queue=res_queue)
    services.work_item_accept(item_id=item.pk, actor=trio[0])
    assert services.work_item_expire_reservation(item_id=item.pk) is None
    other = factories.item(actor=svc, queue=res_queue)  # r1, in time
    assert services.work_item_expire_reservation(item_id=other.pk) is None
    other.refresh_from_db()
    assert other.reserved_for == trio[1] and other.version == 1


def test_accept_still_checks_the_constraints(svc, sam, team_a, trio):
    q = factories.queue(
        "reserve-cap", groups=[team_a], strategy="least_loaded", capacity_per_user=1, reservation_timeout=timedelta(1)
    )
    item = factories.item(actor=svc, queue=q)
    assert item.reserved_for == trio[0]
    # The reservation itself is load (capacity 1): a supervisor cannot push a second item on top.
    other = factories.item(actor=svc, queue=q, strategy="offer")
    with pytest.raises(ConstraintViolated):
        services.work_item_assign(item_id=other.pk, actor=sam, user=trio[0])
    # Accepting is checked again: with a personal capacity of 0 the reservee cannot take it.
    from directory.models import Profile

    Profile.objects.update_or_create(user=trio[0], defaults={"capacity": 0})
    with pytest.raises(ConstraintViolated) as exc:
        services.work_item_accept(item_id=item.pk, actor=trio[0])
    assert exc.value.constraint == "capacity"


# --- over the API -------------------------------------------------------------------------------


def api(user) -> APIClient:
    c = APIClient()
    c.force_authenticate(user)
    return c


def test_accept_and_reject_over_the_api(svc, res_queue, trio):
    first = factories.item(actor=svc, queue=res_queue)  # r0
    second = factories.item(actor=svc, queue=res_queue)  # r1
    r = api(trio[1]).post(f"/api/v1/workitems/{first.pk}/accept", format="json")
    assert r.status_code == 403, r.content
    r = api(trio[0]).post(f"/api/v1/workitems/{first.pk}/accept", format="json")
    assert r.status_code == 200, r.content
    assert r.json()["state"] == "ASSIGNED" and r.json()["assignee"] == "r0" and r["ETag"] == '"2"'
    r = api(trio[1]).post(f"/api/v1/workitems/{second.pk}/reject", {"reason": "not my area"}, format="json")
    assert r.status_code == 200, r.content
    body = r.json()
    assert body["state"] == "OFFERED" and body["assignee"] is None
    second.refresh_from_db()
    assert second.reserved_for == trio[2]  # next in turn, r1 excluded
    rec = AuditRecord.objects.get(work_item=second, action="reject")
    assert rec.actor_username == "r1" and rec.channel == "api" and rec.data["reason"] == "not my area"
    r = api(trio[1]).post(f"/api/v1/workitems/{second.pk}/reject", format="json")
    assert r.status_code == 403  # no longer theirs
    r = api(trio[2]).post(f"/api/v1/workitems/{first.pk}/reject", format="json")
    assert r.status_code == 409 and r["Content-Type"] == "application/problem+json"  # ASSIGNED now


@pytest.mark.parametrize("strategy", ["least_loaded", "longest_idle"])
def test_load_based_strategies_spread_reservations(svc, team_a, trio, strategy):
    q = factories.queue(f"reserve-{strategy}", groups=[team_a], strategy=strategy, reservation_timeout=timedelta(1))
    got = [factories.item(actor=svc, queue=q).reserved_for.username for _ in range(3)]
    assert sorted(got) == ["r0", "r1", "r2"]


def test_reservations_respect_capacity(svc, team_a, trio):
    q = factories.queue(
        "reserve-cap1", groups=[team_a], strategy="round_robin", capacity_per_user=1, reservation_timeout=timedelta(1)
    )
    got = [factories.item(actor=svc, queue=q).reserved_for for _ in range(4)]
    assert got[:3] == trio and got[3] is None  # everyone has one pending: the fourth stays plainly offered


def test_the_reservation_is_visible_in_the_item_and_its_event(svc, res_queue, trio):
    from events.models import OutboxEvent

    item = factories.item(actor=svc, queue=res_queue)
    body = api(trio[0]).get(f"/api/v1/workitems/{item.pk}").json()
    assert body["reserved_for"] == trio[0].username and body["reserved_until"]
    created = OutboxEvent.objects.get(aggregate_id=str(item.pk), event_type="workitem.created.v1")
    assert created.payload["work_item"]["reserved_for"] == trio[0].username
