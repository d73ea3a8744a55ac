"""Who an item may be given to (issue 10, item 4): the target of `delegate`, `assign`, `accept`,
a direct `assignee` on create and an absence delegate must be an active person (a worker or
supervisor, not a service client, whose roles may work the item under its lifecycle) in the
item's pool (named on it, or a member of its queue when it names nobody), unless a supervisor
overrides explicitly, which is audited. policy.hold_refusal and policy.delegate_refusal."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from audit.models import AuditRecord
from directory import services as directory
from directory.models import Profile
from events import inbound
from events.models import InboxCommand
from tests import factories
from tests.factories import observed
from workitems import policy, services
from workitems.errors import ConstraintViolated, NotAllowed, ValidationFailed
from workitems.models import State, WorkItem


@pytest.fixture
def cast(team_a, team_b, alice, carol, bob, sam, svc, ada):
    """Beside the personas: a second service client, an inactive worker of team A, a team A
    member holding both the worker and the service role, an admin of team A without the
    worker role, and a team A member with no platform role at all."""
    return {
        "alice": alice,
        "carol": carol,
        "bob": bob,
        "sam": sam,
        "svc": svc,
        "ada": ada,
        "svc2": factories.user("svc2", roles=["service"], groups=[team_a]),
        "gone": factories.user("gone", roles=["worker"], groups=[team_a], is_active=False),
        "robot": factories.user("robot", roles=["worker", "service"], groups=[team_a]),
        "root": factories.user("root", roles=["admin"], groups=[team_a]),
        "plain": factories.user("plain", groups=[team_a]),
    }


def refused(error, command, item_id: int, **kwargs):
    """Run the command, expect `error` and no change to the item (row, audit, outbox)."""
    before = observed(item_id)
    with pytest.raises(error) as info:
        command(item_id=item_id, **kwargs)
    assert observed(item_id) == before
    return info.value


# The targets nobody may be given an item to without an override, and why (the constraint).
NOT_ELIGIBLE = [
    ("bob", "candidate"),  # a worker of another team: not a member of the queue
    ("svc", "person"),  # a service client: it could never start the item
    ("svc2", "person"),  # a service client that is even in team A's group
    ("robot", "person"),  # worker and service role: a machine account all the same
    ("ada", "person"),  # an admin without the worker role
    ("root", "person"),  # an admin in team A's group, still without a work role
    ("plain", "person"),  # in the team's group, but no platform role
    ("gone", "active"),  # an inactive worker of team A
]


@pytest.mark.parametrize(("target", "constraint"), NOT_ELIGIBLE)
def test_a_worker_cannot_delegate_to_anyone_but_an_eligible_person(cast, svc, queue, target, constraint):
    item = factories.item(actor=svc, queue=queue)
    services.work_item_claim(item_id=item.pk, actor=cast["alice"])
    exc = refused(ConstraintViolated, services.work_item_delegate, item.pk, actor=cast["alice"], user=target)
    assert exc.constraint == constraint and target in exc.detail
    # the eligible colleague is fine
    item = services.work_item_delegate(item_id=item.pk, actor=cast["alice"], user="carol")
    assert (item.state, item.assignee.username) == ("ASSIGNED", "carol")


@pytest.mark.parametrize(("target", "constraint"), NOT_ELIGIBLE)
def test_a_supervisor_cannot_assign_to_anyone_but_an_eligible_person(cast, svc, queue, target, constraint):
    item = factories.item(actor=svc, queue=queue)
    exc = refused(ConstraintViolated, services.work_item_assign, item.pk, actor=cast["sam"], user=target)
    assert exc.constraint == constraint
    assert services.work_item_assign(item_id=item.pk, actor=cast["sam"], user="alice").assignee_id == cast["alice"].pk


@pytest.mark.parametrize(("target", "constraint"), [t for t in NOT_ELIGIBLE if t[1] != "candidate"])
def test_an_override_does_not_make_a_non_person_a_holder(cast, svc, queue, target, constraint):
    item = factories.item(actor=svc, queue=queue)
    exc = refused(ConstraintViolated, services.work_item_assign, item.pk, actor=cast["sam"], user=target, override=True)
    assert exc.constraint == constraint


@pytest.mark.parametrize("overrider", ["sam", "ada"])
def test_a_supervisor_or_admin_override_gives_the_item_outside_its_pool_and_is_audited(cast, svc, queue, overrider):
    actor = cast[overrider]
    item = factories.item(actor=svc, queue=queue)
    item = services.work_item_assign(item_id=item.pk, actor=actor, user="bob", override=True)
    assert (item.state, item.assignee_id) == ("ASSIGNED", cast["bob"].pk)
    rec = AuditRecord.objects.filter(work_item=item, action="assign").get()
    assert rec.actor_username == overrider
    assert rec.data == {"version": item.version, "assignee": "bob", "override": True}
    # bob delegates back into the team (carol is a candidate); a supervisor may send it out again
    item = services.work_item_delegate(item_id=item.pk, actor=cast["bob"], user="carol")
    item = services.work_item_delegate(item_id=item.pk, actor=actor, user="bob", override=True)
    last = AuditRecord.objects.filter(work_item=item, action="delegate").order_by("-seq").first()
    assert last.data["override"] is True and item.assignee_id == cast["bob"].pk
    # an ordinary assignment or delegation says nothing of an override
    first = AuditRecord.objects.filter(work_item=item, action="delegate").order_by("seq").first()
    assert "override" not in first.data


@pytest.mark.parametrize("target", ["bob", "carol"])
def test_a_worker_asking_to_override_is_refused(cast, svc, queue, target):
    item = factories.item(actor=svc, queue=queue)
    services.work_item_claim(item_id=item.pk, actor=cast["alice"])
    exc = refused(NotAllowed, services.work_item_delegate, item.pk, actor=cast["alice"], user=target, override=True)
    assert "supervisors and admins" in exc.detail


def test_override_must_be_a_boolean(cast, svc, queue):
    item = factories.item(actor=svc, queue=queue)
    for bad in ("yes", 1, None):
        exc = refused(ValidationFailed, services.work_item_assign, item.pk, actor=cast["sam"], user="bob", override=bad)
        assert exc.errors[0]["field"] == "override"


def test_the_pool_is_the_items_own_candidates_when_it_names_any(cast, svc, queue):
    # the item names bob (another team): he is in its pool, the queue's members are not
    item = factories.item(actor=svc, queue=queue, candidate_users=["bob"])
    exc = refused(ConstraintViolated, services.work_item_assign, item.pk, actor=cast["sam"], user="alice")
    assert exc.constraint == "candidate"
    assert services.work_item_assign(item_id=item.pk, actor=cast["sam"], user="bob").assignee_id == cast["bob"].pk
    # named through a group: team B's item in team A's queue goes to team B, not to team A
    item = factories.item(actor=svc, queue=queue, candidate_groups=["team-b"])
    refused(ConstraintViolated, services.work_item_assign, item.pk, actor=cast["sam"], user="carol")
    assert services.work_item_assign(item_id=item.pk, actor=cast["sam"], user="bob").assignee_id == cast["bob"].pk


def test_a_supervisor_is_a_person_but_must_be_in_the_pool(cast, svc, queue, team_a):
    item = factories.item(actor=svc, queue=queue)
    exc = refused(ConstraintViolated, services.work_item_assign, item.pk, actor=cast["sam"], user="sam")
    assert exc.constraint == "candidate"
    lead = factories.user("lead", roles=["supervisor"], groups=[team_a])
    assert services.work_item_assign(item_id=item.pk, actor=cast["sam"], user="lead").assignee_id == lead.pk


def test_the_lifecycle_decides_which_roles_may_work_the_item(cast, svc, team_a):
    # only supervisors may start items of this queue: a worker would hold it and could not start it
    lc = factories.lifecycle("supervisors-start", action_roles={"start": ["supervisor"]})
    q = factories.queue("lead-work", groups=[team_a], lifecycle=lc)
    lead = factories.user("lead", roles=["supervisor"], groups=[team_a])
    item = factories.item(actor=svc, queue=q)
    exc = refused(ConstraintViolated, services.work_item_assign, item.pk, actor=cast["sam"], user="alice")
    assert exc.constraint == "person" and "start" in exc.detail
    assert services.work_item_assign(item_id=item.pk, actor=cast["sam"], user="lead").assignee_id == lead.pk
    # with start disabled, only complete counts: complete for everyone hands-on again
    lc2 = factories.lifecycle("no-start", start_step="disabled", action_roles={"start": ["supervisor"]})
    q2 = factories.queue("quick", groups=[team_a], lifecycle=lc2)
    item2 = factories.item(actor=svc, queue=q2)
    assert services.work_item_assign(item_id=item2.pk, actor=cast["sam"], user="alice").assignee_id == cast["alice"].pk


def test_accept_needs_the_reservee_to_be_still_eligible(cast, svc, team_a):
    desk = factories.group("desk")
    q = factories.queue("reserving", groups=[team_a, desk], reservation_timeout=timedelta(minutes=5))
    alice = cast["alice"]
    alice.groups.add(desk)
    item = factories.item(actor=svc, queue=q, assignee="alice", candidate_groups=["team-a"])
    assert item.reserved_for_id == alice.pk
    alice.groups.remove(team_a)  # moved out of the team the item names; she still sees the queue
    alice = type(alice).objects.get(pk=alice.pk)
    exc = refused(ConstraintViolated, services.work_item_accept, item.pk, actor=alice)
    assert exc.constraint == "candidate"
    # carol's reservation goes through as before
    item2 = factories.item(actor=svc, queue=q, assignee="carol", candidate_groups=["team-a"])
    assert services.work_item_accept(item_id=item2.pk, actor=cast["carol"]).assignee_id == cast["carol"].pk


# --- create with a direct assignee ----------------------------------------------------------


@pytest.mark.parametrize(("target", "constraint"), NOT_ELIGIBLE)
def test_create_refuses_a_direct_assignee_who_may_not_hold_it(cast, svc, queue, target, constraint):
    before = WorkItem.objects.count()
    with pytest.raises(ConstraintViolated) as info:
        factories.item(actor=svc, queue=queue, assignee=target)
    assert info.value.constraint == constraint and info.value.detail.startswith("assignee: ")
    assert WorkItem.objects.count() == before and not AuditRecord.objects.filter(action="create").exists()


def test_create_with_an_eligible_assignee_still_assigns(cast, svc, queue):
    item = factories.item(actor=svc, queue=queue, assignee="alice")
    assert (item.state, item.assignee_id) == (State.ASSIGNED, cast["alice"].pk)
    # named candidates decide the pool of a new item too
    item = factories.item(actor=svc, queue=queue, assignee="bob", candidate_users=["bob"])
    assert item.assignee_id == cast["bob"].pk
    with pytest.raises(ConstraintViolated):
        factories.item(actor=svc, queue=queue, assignee="alice", candidate_groups=["team-b"])


def test_bulk_create_names_the_index_of_the_bad_assignee_and_writes_nothing(cast, svc, queue):
    bodies = [factories.item_body(queue, assignee="alice"), factories.item_body(queue, assignee="svc2")]
    with pytest.raises(ConstraintViolated) as info:
        services.work_item_create_many(actor=svc, items=bodies)
    assert info.value.constraint == "person" and info.value.detail.startswith("items[1].assignee: ")
    assert not WorkItem.objects.exists()


# --- absence delegates ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("svc", "not a person"),
        ("svc2", "not a person"),  # a service client in alice's team group
        ("robot", "not a person"),
        ("ada", "not a person"),
        ("root", "not a person"),
        ("bob", "shares no team with alice"),
        ("sam", "shares no team with alice"),  # a supervisor outside her teams
        ("gone", "not active"),
    ],
)
def test_an_absence_delegate_must_be_an_active_person_of_the_users_team(cast, target, message):
    alice = cast["alice"]
    with pytest.raises(ValidationFailed) as info:
        directory.availability_set(actor=alice, user=alice, delegate=cast[target])
    assert info.value.errors[0]["field"] == "delegate" and message in info.value.errors[0]["message"]
    assert Profile.objects.filter(user=alice, delegate__isnull=False).count() == 0
    # a supervisor setting it for her gets the same answer
    with pytest.raises(ValidationFailed):
        directory.availability_set(actor=cast["sam"], user=alice, delegate=cast[target])


def test_absence_hand_over_to_a_valid_delegate_still_works(cast, svc, queue):
    alice = cast["alice"]
    held = [factories.item(actor=svc, queue=queue, assignee="alice") for _ in range(2)]
    services.work_item_start(item_id=held[1].pk, actor=alice)
    directory.availability_set(actor=alice, user=alice, delegate=cast["carol"])
    for it in held:
        it.refresh_from_db()
        assert (it.state, it.assignee_id, it.return_to_id) == (State.ASSIGNED, cast["carol"].pk, alice.pk)
    rec = AuditRecord.objects.filter(work_item=held[0], action="delegate").get()
    assert rec.channel == "system" and rec.data["assignee"] == "carol"
    directory.availability_clear(actor=alice, user=alice)
    held[0].refresh_from_db()
    assert held[0].assignee_id == alice.pk


def test_absence_hand_over_skips_a_delegate_outside_the_items_pool(cast, svc, queue):
    alice = cast["alice"]
    # the item names alice alone: carol, her valid delegate, may not hold it
    only_hers = factories.item(actor=svc, queue=queue, assignee="alice", candidate_users=["alice"])
    started = factories.item(actor=svc, queue=queue, assignee="alice", candidate_users=["alice"])
    services.work_item_start(item_id=started.pk, actor=alice)
    ordinary = factories.item(actor=svc, queue=queue, assignee="alice")
    directory.availability_set(actor=alice, user=alice, delegate=cast["carol"])
    only_hers.refresh_from_db()
    started.refresh_from_db()
    ordinary.refresh_from_db()
    assert (only_hers.state, only_hers.assignee_id) == (State.OFFERED, None)  # back to its queue
    assert (started.state, started.assignee_id) == (State.SUSPENDED, alice.pk)  # nobody may take it over
    assert (ordinary.state, ordinary.assignee_id) == (State.ASSIGNED, cast["carol"].pk)


def test_an_item_on_a_delegate_set_before_the_rule_is_not_delegated_to_a_non_person(cast, svc, queue):
    """A delegate stored before this rule (or by hand) who is no person: the hand-over skips them."""
    alice = cast["alice"]
    item = factories.item(actor=svc, queue=queue, assignee="alice")
    Profile.objects.update_or_create(user=alice, defaults={"delegate": cast["svc2"]})
    Profile.objects.filter(user=alice).update(out_of_office_from=timezone.now())
    services.work_items_hand_over(user=alice)
    item.refresh_from_db()
    assert (item.state, item.assignee_id) == (State.OFFERED, None)
    assert not AuditRecord.objects.filter(work_item=item, action="delegate").exists()


# --- distribution and the bus ---------------------------------------------------------------


def test_distributions_own_pushes_are_unchanged(svc, sam):
    crew = factories.group("crew")
    members = {factories.user(n, roles=["worker"], groups=[crew]).username for n in ("w1", "w2", "w3")}
    q = factories.queue("rr", groups=[crew], strategy="round_robin")
    got = [factories.item(actor=svc, queue=q) for _ in range(3)]
    assert {it.assignee.username for it in got} == members
    # a release passes the item on through distribution, whose choice needs no target check
    first = got[0]
    item = services.work_item_release(item_id=first.pk, actor=first.assignee)
    assert item.state == State.ASSIGNED and item.assignee.username in members - {first.assignee.username}


def _bus(command: str, actor: str, item_id: int, **extra) -> InboxCommand:
    n = InboxCommand.objects.count()
    cmd = {"command_id": f"c-{command}-{actor}-{item_id}-{n}", "command": command, "actor": actor, "item_id": item_id}
    inbound.apply({**cmd, **extra})
    return InboxCommand.objects.get(command_id=cmd["command_id"])


def test_the_bus_applies_the_same_rule_and_the_same_override(cast, svc, queue):
    item = factories.item(actor=svc, queue=queue)
    row = _bus("assign", "sam", item.pk, user="bob")
    assert row.outcome == inbound.REJECTED and row.error["type"] == "constraint-violated"
    row = _bus("assign", "sam", item.pk, user="svc2", override=True)
    assert row.outcome == inbound.REJECTED and row.error["type"] == "constraint-violated"
    row = _bus("assign", "sam", item.pk, user="bob", override="yes")
    assert row.outcome == inbound.REJECTED and row.error["type"] == "validation-error"
    row = _bus("assign", "sam", item.pk, user="bob", override=True)
    assert row.outcome == inbound.APPLIED
    assert AuditRecord.objects.filter(work_item=item, action="assign").get().data["override"] is True
    row = _bus("delegate", "bob", item.pk, user="svc", override=True)
    assert row.outcome == inbound.REJECTED and row.error["type"] == "not-allowed"


# --- the rule itself ------------------------------------------------------------------------


def test_is_person_and_hold_refusal_by_hand(cast, svc, queue):
    assert [u for u in cast if policy.is_person(cast[u])] == ["alice", "carol", "bob", "sam"]
    item = factories.item(actor=svc, queue=queue)
    assert policy.hold_refusal(cast["alice"], item) is None
    assert policy.hold_refusal(cast["bob"], item)[0] == "candidate"
    assert policy.hold_refusal(cast["bob"], item, override=True) is None
    assert policy.hold_refusal(cast["svc"], item, override=True)[0] == "person"
    assert policy.may_override_holding(None) and policy.may_override_holding(cast["ada"])
    assert not policy.may_override_holding(cast["alice"]) and not policy.may_override_holding(cast["svc"])
