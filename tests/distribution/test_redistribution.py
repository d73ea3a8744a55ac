"""Re-distribution: release goes back through the engine (to somebody else in a push queue);
an absent or deactivated user's held items move to the delegate or back to distribution,
and return to their owner if nobody touched them meanwhile."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from audit.models import AuditRecord
from directory.models import Profile
from events.models import OutboxEvent
from tests import factories
from workitems import services
from workitems.models import State, WorkItem


@pytest.fixture
def trio(team_a):
    return [factories.user(f"d{i}", roles=["worker"], groups=[team_a]) for i in range(3)]


def away(user, delegate=None) -> None:
    Profile.objects.update_or_create(
        user=user, defaults={"out_of_office_from": timezone.now() - timedelta(minutes=1), "delegate": delegate}
    )


def back(user) -> None:
    Profile.objects.filter(user=user).update(out_of_office_from=None, out_of_office_until=None)


def deactivate(user) -> None:
    """What directory's user_deactivate does before handing over: the account is inactive."""
    user.is_active = False
    user.save(update_fields=["is_active"])


# --- release ---------------------------------------------------------------------------------


def test_release_in_round_robin_goes_to_the_next_user_not_the_releaser(svc, team_a, trio):
    q = factories.queue("rr-release", groups=[team_a], strategy="round_robin")
    a = factories.item(actor=svc, queue=q)
    b = factories.item(actor=svc, queue=q)
    assert (a.assignee, b.assignee) == (trio[0], trio[1])
    b = services.work_item_release(item_id=b.pk, actor=trio[1])
    assert b.state == State.ASSIGNED and b.assignee == trio[2]
    a = services.work_item_release(item_id=a.pk, actor=trio[0])
    assert a.assignee == trio[1]  # the cursor was at d2: d0 (the releaser) is skipped
    actions = list(AuditRecord.objects.filter(work_item=a).order_by("seq").values_list("action", "actor_username"))
    assert actions == [("create", "svc"), ("release", "d0"), ("assign", "")]
    assert AuditRecord.objects.get(work_item=a, action="assign").data == {
        "version": 3,
        "assignee": "d1",
        "strategy": "round_robin",
    }


def test_release_by_the_only_candidate_leaves_it_offered_and_says_why(svc, team_b, bob):
    q = factories.queue("solo-release", groups=[team_b], strategy="round_robin")
    item = factories.item(actor=svc, queue=q)
    assert item.assignee == bob
    item = services.work_item_release(item_id=item.pk, actor=bob)
    assert item.state == State.OFFERED and item.assignee is None
    ev = OutboxEvent.objects.filter(aggregate_id=str(item.pk)).order_by("-sequence").first()
    assert ev.event_type == "workitem.unassigned.v1" and ev.payload["transition"]["reason"] == "excluded"
    assert services.work_item_claim_next(actor=bob).pk == item.pk  # pull is still open to bob


def test_release_in_a_pull_queue_just_offers_it_again(make_item, alice, carol):
    item = services.work_item_claim(item_id=make_item().pk, actor=alice)
    item = services.work_item_release(item_id=item.pk, actor=alice)
    assert item.state == State.OFFERED and item.assignee is None
    assert services.work_item_claim_next(actor=carol).pk == item.pk


# --- absence with a delegate --------------------------------------------------------------------


def test_out_of_office_items_go_to_the_delegate_and_come_back_untouched(svc, queue, trio):
    owner, delegate = trio[0], trio[1]
    assigned = factories.item(actor=svc, queue=queue, assignee=owner.username)
    started = services.work_item_start(
        item_id=factories.item(actor=svc, queue=queue, assignee=owner.username).pk, actor=owner
    )
    away(owner, delegate)
    assert services.work_items_hand_over(user=owner) == 2
    for it in (assigned, started):
        it.refresh_from_db()
        assert it.assignee == delegate and it.return_to == owner and it.state == State.ASSIGNED
    assert started.started_at is None  # the delegate starts afresh
    rec = AuditRecord.objects.filter(work_item=assigned).order_by("-seq").first()
    assert rec.action == "delegate" and rec.channel == "system"
    assert rec.data["return_to"] == owner.username and rec.data["reason"] == "out of office"
    back(owner)
    assert services.work_items_return_to(user=owner) == 2
    for it in (assigned, started):
        it.refresh_from_db()
        assert it.assignee == owner and it.return_to is None
    assert AuditRecord.objects.filter(work_item=assigned).order_by("-seq").first().data["reason"] == "owner returned"


def test_items_the_delegate_touched_stay_with_the_delegate(svc, queue, trio, sam):
    owner, delegate = trio[0], trio[1]
    started = factories.item(actor=svc, queue=queue, assignee=owner.username)
    escalated = factories.item(actor=svc, queue=queue, assignee=owner.username)
    untouched = factories.item(actor=svc, queue=queue, assignee=owner.username)
    away(owner, delegate)
    assert services.work_items_hand_over(user=owner) == 3
    services.work_item_start(item_id=started.pk, actor=delegate)
    services.work_item_escalate(item_id=escalated.pk, actor=sam, reason="late")
    back(owner)
    assert services.work_items_return_to(user=owner) == 1
    assert WorkItem.objects.get(pk=started.pk).assignee == delegate
    assert WorkItem.objects.get(pk=started.pk).state == State.IN_PROGRESS
    assert WorkItem.objects.get(pk=escalated.pk).assignee == delegate
    assert WorkItem.objects.get(pk=untouched.pk).assignee == owner


def test_delegate_without_room_sends_the_item_back_to_distribution(svc, team_a, trio):
    q = factories.queue("abs-cap", groups=[team_a], strategy="round_robin", capacity_per_user=1)
    owner, delegate = trio[0], trio[1]
    mine = factories.item(actor=svc, queue=q)  # d0
    theirs = factories.item(actor=svc, queue=q)  # d1: full now
    assert (mine.assignee, theirs.assignee) == (owner, delegate)
    away(owner, delegate)
    services.work_items_hand_over(user=owner)
    mine.refresh_from_db()
    assert mine.assignee == trio[2] and mine.return_to is None  # released and pushed to d2
    assert list(AuditRecord.objects.filter(work_item=mine).order_by("seq").values_list("action", flat=True)) == [
        "create",
        "release",
        "assign",
    ]


# --- absence without a delegate, deactivation ---------------------------------------------------


def test_absent_without_delegate_assigned_items_go_back_to_distribution(svc, team_a, trio):
    q = factories.queue("abs-rr", groups=[team_a], strategy="round_robin")
    item = factories.item(actor=svc, queue=q)
    assert item.assignee == trio[0]
    away(trio[0])
    assert services.work_items_hand_over(user=trio[0]) == 1
    item.refresh_from_db()
    assert item.state == State.ASSIGNED and item.assignee == trio[1]


def test_absent_without_delegate_in_progress_items_are_suspended_and_resume_on_return(svc, queue, trio):
    """An IN_PROGRESS item cannot be released (the lifecycle releases only ASSIGNED), so it is
    suspended, still held by the absent user; when they return it resumes where it was."""
    owner = trio[0]
    item = services.work_item_start(
        item_id=factories.item(actor=svc, queue=queue, assignee=owner.username).pk, actor=owner
    )
    away(owner)
    assert services.work_items_hand_over(user=owner) == 0  # nothing moved away from the owner
    item.refresh_from_db()
    assert item.state == State.SUSPENDED and item.resume_state == State.IN_PROGRESS
    assert item.assignee == owner  # still counts against the owner's capacity
    rec = AuditRecord.objects.filter(work_item=item).order_by("-seq").first()
    assert rec.action == "suspend" and rec.data["reason"] == "out of office; no delegate could take it"
    back(owner)
    assert services.work_items_return_to(user=owner) == 1
    item.refresh_from_db()
    assert item.state == State.IN_PROGRESS and item.assignee == owner and item.return_to is None
    rec = AuditRecord.objects.filter(work_item=item).order_by("-seq").first()
    assert rec.action == "resume" and rec.actor_id is None and rec.data["reason"] == "owner returned"


def test_an_item_suspended_for_an_absence_and_touched_since_stays_suspended(svc, queue, trio, sam):
    owner = trio[0]
    item = services.work_item_start(
        item_id=factories.item(actor=svc, queue=queue, assignee=owner.username).pk, actor=owner
    )
    away(owner)
    services.work_items_hand_over(user=owner)
    services.work_item_escalate(item_id=item.pk, actor=sam, reason="a supervisor looked at it")
    back(owner)
    assert services.work_items_return_to(user=owner) == 0
    item.refresh_from_db()
    assert item.state == State.SUSPENDED  # a supervisor decides now


def test_deactivated_user_items_go_back_to_distribution(svc, team_a, trio):
    q = factories.queue("deact-rr", groups=[team_a], strategy="round_robin")
    item = factories.item(actor=svc, queue=q)
    assert item.assignee == trio[0]
    deactivate(trio[0])
    assert services.work_items_hand_over(user=trio[0], reason="deactivated") == 1
    item.refresh_from_db()
    assert item.assignee == trio[1] and item.return_to is None
    assert AuditRecord.objects.get(work_item=item, action="release").data["reason"] == "deactivated"


def test_deactivated_user_items_go_to_the_delegate(svc, queue, trio):
    owner, delegate = trio[0], trio[1]
    item = factories.item(actor=svc, queue=queue, assignee=owner.username)
    Profile.objects.update_or_create(user=owner, defaults={"delegate": delegate})
    deactivate(owner)
    services.work_items_hand_over(user=owner, reason="deactivated")
    item.refresh_from_db()
    assert item.state == State.ASSIGNED and item.assignee == delegate
