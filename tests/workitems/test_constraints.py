"""Who may hold an item, as the commands enforce it: capacity, separation of duties,
exclusions, candidacy, activity, skills. A refusal names its constraint and writes nothing."""

from __future__ import annotations

import pytest

from directory.models import Profile
from distribution import constraints
from tests import factories
from tests.factories import observed
from workitems import services
from workitems.errors import ConstraintViolated
from workitems.models import WorkItem


def profile(user, **fields) -> Profile:
    return Profile.objects.update_or_create(user=user, defaults=fields)[0]


def refused(constraint: str, command, item_id: int, **kwargs) -> ConstraintViolated:
    """Run the command, expect ConstraintViolated(constraint) and no change to the item."""
    before = observed(item_id)
    with pytest.raises(ConstraintViolated) as info:
        command(item_id=item_id, **kwargs)
    assert info.value.constraint == constraint, info.value.detail
    assert observed(item_id) == before
    return info.value


@pytest.fixture
def capped(team_a):
    """Team A's queue where one user may hold one item."""
    return factories.queue("capped", groups=[team_a], capacity_per_user=1)


# --- capacity ---------------------------------------------------------------------------------


def test_queue_capacity_limits_claim_assign_and_delegate(svc, alice, carol, sam, capped):
    first, second, third = (factories.item(actor=svc, queue=capped) for _ in range(3))
    services.work_item_claim(item_id=first.pk, actor=alice)

    exc = refused("capacity", services.work_item_claim, second.pk, actor=alice)
    assert "alice" in exc.detail and "capped" in exc.detail
    refused("capacity", services.work_item_assign, second.pk, actor=sam, user=alice)
    services.work_item_claim(item_id=third.pk, actor=carol)
    refused("capacity", services.work_item_delegate, third.pk, actor=carol, user=alice)

    # a suspended held item still counts; a finished one does not
    services.work_item_suspend(item_id=first.pk, actor=sam)
    refused("capacity", services.work_item_claim, second.pk, actor=alice)
    services.work_item_resume(item_id=first.pk, actor=sam)
    services.work_item_start(item_id=first.pk, actor=alice)
    services.work_item_complete(item_id=first.pk, actor=alice, result={})
    assert services.work_item_claim(item_id=second.pk, actor=alice).assignee_id == alice.pk


def test_capacity_is_per_queue(svc, alice, capped, queue):
    services.work_item_claim(item_id=factories.item(actor=svc, queue=capped).pk, actor=alice)
    # the unlimited queue is not affected by the capped one
    for _ in range(3):
        services.work_item_claim(item_id=factories.item(actor=svc, queue=queue).pk, actor=alice)
    assert WorkItem.objects.filter(assignee=alice, state="ASSIGNED").count() == 4


def test_personal_capacity_counts_every_queue(svc, alice, queue, team_a):
    profile(alice, capacity=2)
    other = factories.queue("other", groups=[team_a])
    services.work_item_claim(item_id=factories.item(actor=svc, queue=queue).pk, actor=alice)
    services.work_item_claim(item_id=factories.item(actor=svc, queue=other).pk, actor=alice)
    refused("capacity", services.work_item_claim, factories.item(actor=svc, queue=queue).pk, actor=alice)


def test_a_supervisor_assigning_is_bound_by_capacity_too_even_when_overriding_candidacy(svc, sam, bob, capped):
    item = factories.item(actor=svc, queue=capped)
    # bob is not of team A: not a candidate; a supervisor may push the item to him only by
    # overriding explicitly (tests/workitems/test_delegation_targets.py), and capacity still holds
    refused("candidate", services.work_item_assign, item.pk, actor=sam, user=bob)
    item = services.work_item_assign(item_id=item.pk, actor=sam, user=bob, override=True)
    assert (item.state, item.assignee_id) == ("ASSIGNED", bob.pk)
    again = factories.item(actor=svc, queue=capped).pk
    refused("capacity", services.work_item_assign, again, actor=sam, user=bob, override=True)


# --- separation of duties ---------------------------------------------------------------------


def test_separation_of_duties_across_one_workflow_run(svc, alice, carol, sam, queue):
    run = {"workflow_id": "loan-7", "run_id": "r1", "sod_key": "four-eyes"}
    prepare = factories.item(actor=svc, queue=queue, **run)
    approve = factories.item(actor=svc, queue=queue, **run)
    services.work_item_claim(item_id=prepare.pk, actor=alice)

    exc = refused("separation_of_duties", services.work_item_claim, approve.pk, actor=alice)
    assert "four-eyes" in exc.detail
    refused("separation_of_duties", services.work_item_assign, approve.pk, actor=sam, user=alice)

    # having acted is enough: after handing the first item back, alice is still out
    services.work_item_release(item_id=prepare.pk, actor=alice)
    refused("separation_of_duties", services.work_item_claim, approve.pk, actor=alice)
    # another person may; and the same key in another run, or another key, is no conflict
    assert services.work_item_claim(item_id=approve.pk, actor=carol).assignee_id == carol.pk
    other_run = factories.item(actor=svc, queue=queue, **{**run, "run_id": "r2"})
    other_key = factories.item(actor=svc, queue=queue, **{**run, "sod_key": "other"})
    services.work_item_claim(item_id=other_run.pk, actor=alice)
    services.work_item_claim(item_id=other_key.pk, actor=alice)


def test_separation_of_duties_blocks_delegation_to_someone_who_acted(svc, alice, carol, queue):
    run = {"workflow_id": "loan-8", "run_id": "r1", "sod_key": "four-eyes"}
    first = factories.item(actor=svc, queue=queue, **run)
    second = factories.item(actor=svc, queue=queue, **run)
    services.work_item_claim(item_id=first.pk, actor=alice)
    services.work_item_claim(item_id=second.pk, actor=carol)
    refused("separation_of_duties", services.work_item_delegate, second.pk, actor=carol, user=alice)


# --- exclusions, candidacy, activity, skills --------------------------------------------------


def test_excluded_users_cannot_take_the_item(svc, alice, carol, sam, queue):
    item = factories.item(actor=svc, queue=queue, excluded_users=["alice"])
    # pull: an excluded user is no candidate for the item
    exc = refused("candidate", services.work_item_claim, item.pk, actor=alice)
    assert "alice" in exc.detail
    # push: a supervisor cannot assign it to them, nor can it be delegated to them
    refused("excluded", services.work_item_assign, item.pk, actor=sam, user=alice)
    services.work_item_claim(item_id=item.pk, actor=carol)
    refused("excluded", services.work_item_delegate, item.pk, actor=carol, user=alice)


def test_only_the_items_own_candidates_may_claim_it(svc, alice, carol, bob, queue, team_b):
    item = factories.item(actor=svc, queue=queue, candidate_users=["carol"])
    # alice is of the queue's team, but the item names its own candidates
    refused("candidate", services.work_item_claim, item.pk, actor=alice)
    assert services.work_item_claim(item_id=item.pk, actor=carol).assignee_id == carol.pk
    # an item naming a group of another team may be claimed by that team's members
    for_b = factories.item(actor=svc, queue=queue, candidate_groups=["team-b"])
    refused("candidate", services.work_item_claim, for_b.pk, actor=alice)
    assert services.work_item_claim(item_id=for_b.pk, actor=bob).assignee_id == bob.pk


def test_an_inactive_user_cannot_be_given_an_item(svc, sam, team_a, queue):
    gone = factories.user("gone", roles=["worker"], groups=[team_a], is_active=False)
    item = factories.item(actor=svc, queue=queue)
    refused("active", services.work_item_assign, item.pk, actor=sam, user=gone)


def test_required_skills(svc, alice, carol, queue):
    profile(carol, skills={"german": 3})
    profile(alice, skills={"french": 5})
    item = factories.item(actor=svc, queue=queue, required_skills=["german"])
    exc = refused("skills", services.work_item_claim, item.pk, actor=alice)
    assert "german" in exc.detail
    assert services.work_item_claim(item_id=item.pk, actor=carol).assignee_id == carol.pk


# --- the checks themselves ---------------------------------------------------------------------


def test_check_can_hold_reports_the_first_constraint_in_order(svc, alice, capped):
    assert constraints.CONSTRAINTS == ("active", "available", "capacity", "skills", "excluded", "separation_of_duties")
    services.work_item_claim(item_id=factories.item(actor=svc, queue=capped).pk, actor=alice)
    item = factories.item(actor=svc, queue=capped, excluded_users=["alice"], required_skills=["german"])
    with pytest.raises(ConstraintViolated) as info:
        constraints.check_can_hold(alice, item)
    assert info.value.constraint == "capacity"  # before skills and excluded
    roomy = factories.item(actor=svc, queue=factories.queue("roomy"), excluded_users=["alice"], required_skills=["x"])
    with pytest.raises(ConstraintViolated) as info:
        constraints.check_can_hold(alice, roomy)
    assert info.value.constraint == "skills"  # before excluded


def test_check_can_hold_passes_for_an_eligible_user(make_item, alice):
    item = make_item()
    constraints.check_can_hold(alice, item)  # no exception
    assert constraints.is_candidate(alice, item)
