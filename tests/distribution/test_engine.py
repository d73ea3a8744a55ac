"""Push strategies, reservations and absences through the service layer (real PostgreSQL)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from directory.models import Profile
from events.models import OutboxEvent
from tests import factories
from workitems import services
from workitems.errors import NotAllowed
from workitems.models import State


@pytest.fixture
def workers(team_a):
    return [factories.user(f"w{i}", roles=["worker"], groups=[team_a]) for i in range(3)]


def test_round_robin_rotates_in_user_id_order(svc, team_a, workers):
    q = factories.queue("rr", groups=[team_a], strategy="round_robin")
    got = [factories.item(actor=svc, queue=q).assignee.username for _ in range(6)]
    assert got == ["w0", "w1", "w2", "w0", "w1", "w2"]


def test_least_loaded_and_capacity_fallback_emits_unassigned(svc, team_a, workers):
    q = factories.queue("ll", groups=[team_a], strategy="least_loaded", capacity_per_user=1)
    got = sorted(factories.item(actor=svc, queue=q).assignee.username for _ in range(3))
    assert got == ["w0", "w1", "w2"]
    fourth = factories.item(actor=svc, queue=q)
    assert fourth.state == State.OFFERED and fourth.assignee is None
    types = list(
        OutboxEvent.objects.filter(aggregate_id=str(fourth.pk))
        .order_by("sequence")
        .values_list("event_type", "sequence")
    )
    assert types == [("workitem.created.v1", 1), ("workitem.unassigned.v1", 2)]
    unassigned = OutboxEvent.objects.get(aggregate_id=str(fourth.pk), event_type="workitem.unassigned.v1")
    assert unassigned.payload["transition"]["reason"] == "capacity"


def test_reservation_reject_moves_on_and_never_returns(svc, team_a, workers):
    q = factories.queue("res", groups=[team_a], strategy="round_robin", reservation_timeout=timedelta(minutes=5))
    item = factories.item(actor=svc, queue=q)
    assert item.state == State.OFFERED and item.reserved_for.username == "w0"
    item = services.work_item_reject(item_id=item.pk, actor=workers[0], reason="busy")
    assert item.reserved_for.username == "w1"
    item = services.work_item_reject(item_id=item.pk, actor=workers[1])
    item = services.work_item_reject(item_id=item.pk, actor=workers[2])
    assert item.state == State.OFFERED and item.reserved_for is None  # everybody declined: pull
    item = services.work_item_claim(item_id=item.pk, actor=workers[1])
    assert item.state == State.ASSIGNED


def test_reservation_timeout_and_accept(svc, team_a, workers):
    q = factories.queue("res2", groups=[team_a], strategy="round_robin", reservation_timeout=timedelta(minutes=5))
    item = factories.item(actor=svc, queue=q)
    type(item).objects.filter(pk=item.pk).update(reserved_until=timezone.now() - timedelta(seconds=1))
    assert services.work_items_expire_reservations() == 1
    item.refresh_from_db()
    assert item.reserved_for.username == "w1"
    with pytest.raises(NotAllowed):
        services.work_item_accept(item_id=item.pk, actor=workers[0])
    item = services.work_item_accept(item_id=item.pk, actor=workers[1])
    assert item.state == State.ASSIGNED and item.assignee.username == "w1"
    actions = list(item.audit_records.order_by("seq").values_list("action", flat=True))
    assert actions == ["create", "reject", "reserve", "accept"]


def test_absence_moves_items_to_delegate_and_back(svc, team_a, workers, sam):
    owner, delegate = workers[0], workers[1]
    q = factories.queue("abs", groups=[team_a])
    item = factories.item(actor=svc, queue=q, assignee=owner.username)
    Profile.objects.update_or_create(user=owner, defaults={"delegate": delegate, "out_of_office_from": timezone.now()})
    assert services.work_items_hand_over(user=owner) == 1
    item.refresh_from_db()
    assert item.assignee == delegate and item.return_to == owner
    assert services.work_items_return_to(user=owner) == 1
    item.refresh_from_db()
    assert item.assignee == owner and item.return_to is None
