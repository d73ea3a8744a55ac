"""A person over capacity after a change (their capacity lowered, their return from an
absence, a queue's capacity_per_user) gets their not-yet-started items redistributed:
lowest priority first, through release and the queue's distribution, never back to them."""

from __future__ import annotations

from datetime import timedelta

import pytest

from audit.models import AuditRecord
from directory import services as directory
from directory.models import Profile
from tests import factories
from workitems import services
from workitems.models import State, WorkItem


@pytest.fixture
def push_queue(team_a):
    return factories.queue("push-q", groups=[team_a], strategy="round_robin")


def given(svc, queue, user, priorities):
    return [factories.item(actor=svc, queue=queue, assignee=user.username, priority=p) for p in priorities]


def holders(items):
    return [
        (i.state, i.assignee.username if i.assignee_id else None)
        for i in WorkItem.objects.filter(pk__in=[x.pk for x in items]).order_by("priority")
    ]


def test_a_lowered_capacity_releases_the_lowest_priority_unstarted_items(svc, sam, alice, carol, push_queue):
    low, mid, high, top = given(svc, push_queue, alice, [10, 20, 30, 40])
    started = given(svc, push_queue, alice, [5])[0]
    services.work_item_start(item_id=started.pk, actor=alice)
    directory.profile_update(actor=sam, user=alice, capacity=2)
    # 5 held, capacity 2: the three lowest-priority ASSIGNED go; started work stays
    assert WorkItem.objects.get(pk=started.pk).assignee == alice
    assert holders([low, mid, high, top]) == [
        (State.ASSIGNED, "carol"),
        (State.ASSIGNED, "carol"),
        (State.ASSIGNED, "carol"),
        (State.ASSIGNED, "alice"),
    ]
    release = AuditRecord.objects.filter(work_item_id=low.pk, action="release").get()
    assert (release.actor_id, release.data["reason"]) == (None, "capacity lowered")
    assert services.work_items_redistribute_over_capacity(user=alice) == []  # within capacity now
    directory.profile_update(actor=sam, user=alice, capacity=5)  # raised: nothing moves
    assert WorkItem.objects.filter(assignee=alice).count() == 2


def test_a_return_from_absence_takes_back_only_what_fits(svc, sam, alice, carol, push_queue):
    """The return gives back through `delegate`, which checks capacity: what does not fit stays
    with the delegate, so a return never leaves anyone above their capacity."""
    items = given(svc, push_queue, alice, [10, 20, 30])
    directory.availability_set(actor=sam, user=alice, delegate=carol)
    directory.profile_update(actor=sam, user=alice, capacity=1)  # while away: she holds nothing
    directory.availability_clear(actor=sam, user=alice)
    assert WorkItem.objects.filter(assignee=alice).count() == 1
    assert WorkItem.objects.filter(pk__in=[i.pk for i in items], assignee=carol).count() == 2
    assert services.work_items_redistribute_over_capacity(user=alice) == []


def test_a_lowered_queue_limit_releases_that_queues_excess(ada, svc, alice, carol, team_a):
    q = factories.queue("limited-q", groups=[team_a], strategy="round_robin")
    other = factories.queue("other-q2", groups=[team_a])
    mine = given(svc, q, alice, [3, 1, 2])
    kept = given(svc, other, alice, [0])
    services.queue_update(actor=ada, name="limited-q", data={"capacity_per_user": 1})
    # the lowest to carol, the next offered (carol is at the limit too), the highest stays
    assert holders(mine) == [(State.ASSIGNED, "carol"), (State.OFFERED, None), (State.ASSIGNED, "alice")]
    assert WorkItem.objects.get(pk=kept[0].pk).assignee == alice  # other queues do not count here
    services.queue_update(actor=ada, name="limited-q", data={"capacity_per_user": 5})  # raised: nothing moves
    assert WorkItem.objects.filter(queue=q, assignee=carol).count() == 1


def test_a_queue_limit_counts_only_that_queue_and_nobody_free_leaves_it_offered(svc, alice, team_a):
    lone = factories.queue("lone-q", groups=[team_a], strategy="round_robin")
    other = factories.queue("other-q", groups=[team_a])
    mine = given(svc, lone, alice, [1, 2, 3])
    elsewhere = given(svc, other, alice, [0])
    lone.capacity_per_user = 1
    lone.save()
    released = services.work_items_redistribute_over_capacity(user=alice)
    assert released == [mine[0].pk, mine[1].pk]
    # nobody else in the pool: offered to the queue's candidates, not pushed back to alice
    assert holders(mine) == [(State.OFFERED, None), (State.OFFERED, None), (State.ASSIGNED, "alice")]
    assert WorkItem.objects.get(pk=elsewhere[0].pk).assignee == alice
    assert Profile.objects.get(user=alice).capacity is None


def test_the_redistribution_is_cheap_when_nobody_is_over(svc, alice, push_queue, django_assert_max_num_queries):
    given(svc, push_queue, alice, [1, 2])
    with django_assert_max_num_queries(3):
        assert services.work_items_redistribute_over_capacity(user=alice) == []
    assert WorkItem.objects.filter(assignee=alice).count() == 2


def test_a_lowered_queue_limit_counts_reservations_as_load(ada, svc, alice, carol, team_a):
    """The queue-wide pass picks its people by the load the constraints count (held plus
    reserved, constraints.load_filter), as the per-person pass measures it: one item held and
    two reserved is three, over a limit of two, though only one is held."""
    q = factories.queue("reserving-q", groups=[team_a], strategy="round_robin", reservation_timeout=timedelta(hours=1))
    held, *reserved = given(svc, q, alice, [1, 2, 3])
    assert all(WorkItem.objects.get(pk=i.pk).reserved_for_id == alice.pk for i in (held, *reserved))
    services.work_item_accept(item_id=held.pk, actor=alice)
    services.queue_update(actor=ada, name="reserving-q", data={"capacity_per_user": 2})
    # the held one goes (reservations are not released); she is within the limit again
    moved = WorkItem.objects.get(pk=held.pk)
    assert (moved.state, moved.assignee_id, moved.reserved_for_id) == (State.OFFERED, None, carol.pk)
    assert [WorkItem.objects.get(pk=i.pk).reserved_for_id for i in reserved] == [alice.pk, alice.pk]
    assert services.work_items_redistribute_over_capacity(user=alice) == []
