"""Candidate pools and each constraint, alone and combined, on the database:
`constraints.resolve` (what the engine sees), `route_item` (what it decides) and the
`workitem.unassigned.v1` event that says which constraint emptied the list."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from directory.models import Profile, Role, RoleAssignment
from distribution import constraints
from distribution.engine import route_item
from events.models import OutboxEvent
from tests import factories
from workitems import services
from workitems.errors import ConstraintViolated, NotFound
from workitems.models import State


@pytest.fixture
def five(team_a):
    """u0…u4, workers of team A (user ids ascending)."""
    return [factories.user(f"u{i}", roles=["worker"], groups=[team_a]) for i in range(5)]


def ids(res) -> list[str]:
    return [c.username for c in res.candidates]


def profile(user, **fields) -> Profile:
    return Profile.objects.update_or_create(user=user, defaults=fields)[0]


def unassigned_reason(item) -> str | None:
    ev = OutboxEvent.objects.filter(aggregate_id=str(item.pk), event_type="workitem.unassigned.v1").last()
    return None if ev is None else ev.payload["transition"]["reason"]


def routed(item, strategy="least_loaded", **kw):
    item.strategy = strategy
    return route_item(item=item, **kw)


# --- the pool --------------------------------------------------------------------------------


def test_pool_is_the_queue_groups_members(make_item, five, bob):
    res = constraints.resolve(make_item())
    assert ids(res) == ["u0", "u1", "u2", "u3", "u4"] and res.emptied_by is None and res.pool_size == 5


def test_item_candidates_replace_the_queue_pool(make_item, five, bob, team_b):
    assert ids(constraints.resolve(make_item(candidate_users=["u3", "bob"]))) == ["u3", "bob"]
    assert ids(constraints.resolve(make_item(candidate_groups=["team-b"]))) == ["bob"]
    both = constraints.resolve(make_item(candidate_users=["u1"], candidate_groups=["team-b"]))
    assert sorted(ids(both)) == ["bob", "u1"]


def test_role_assignment_valid_now_adds_to_the_pool(make_item, queue, five):
    now = timezone.now()
    role = Role.objects.create(code="claims-approver", name="Claims approver")
    role.queues.add(queue)
    current = factories.user("current", roles=["worker"])
    expired = factories.user("expired", roles=["worker"])
    future = factories.user("future", roles=["worker"])
    open_ended = factories.user("openended", roles=["worker"])
    RoleAssignment.objects.create(
        user=current, role=role, valid_from=now - timedelta(hours=1), valid_to=now + timedelta(hours=1)
    )
    RoleAssignment.objects.create(
        user=expired, role=role, valid_from=now - timedelta(hours=2), valid_to=now - timedelta(hours=1)
    )
    RoleAssignment.objects.create(user=future, role=role, valid_from=now + timedelta(hours=1))
    RoleAssignment.objects.create(user=open_ended, role=role, valid_from=now - timedelta(days=1))
    item = make_item()
    names = set(ids(constraints.resolve(item)))
    assert {"current", "openended"} <= names and not {"expired", "future"} & names
    # the same rule decides who may pull: claim-next and claim
    assert services.work_item_claim_next(actor=expired) is None
    with pytest.raises(NotFound):  # a future role grants nothing yet, not even sight of the item
        services.work_item_claim(item_id=item.pk, actor=future)
    assert services.work_item_claim_next(actor=current).pk == item.pk


def test_empty_pool_is_reported_as_candidates(svc, five):
    lonely = factories.queue("nobody-here", strategy="round_robin")
    item = factories.item(actor=svc, queue=lonely)
    assert constraints.resolve(item).emptied_by == "candidates"
    assert item.state == State.OFFERED and unassigned_reason(item) == "candidates"


# --- each constraint alone ---------------------------------------------------------------------


def test_active(make_item, five):
    for u in five[:4]:
        u.is_active = False
        u.save()
    item = make_item()
    assert ids(constraints.resolve(item)) == ["u4"]
    five[4].is_active = False
    five[4].save()
    res = constraints.resolve(item)
    assert res.candidates == [] and res.emptied_by == "active"
    route = routed(item)
    assert route.action == "offer" and route.reason == "active"


def test_available_absent_user_is_replaced_by_their_delegate(make_item, five, bob):
    now = timezone.now()
    profile(five[0], out_of_office_from=now - timedelta(hours=1), delegate=bob)  # bob: not in the pool
    profile(five[1], out_of_office_from=now - timedelta(hours=1))  # absent, no delegate
    profile(five[2], out_of_office_from=now + timedelta(days=1))  # absence not started
    profile(five[3], out_of_office_from=now - timedelta(days=2), out_of_office_until=now - timedelta(days=1))  # over
    item = make_item()
    res = constraints.resolve(item)
    assert sorted(ids(res)) == ["bob", "u2", "u3", "u4"]
    stand_in = next(c for c in res.candidates if c.username == "bob")
    assert stand_in.on_behalf_of == five[0].pk
    route = route_item(item=item, requested_assignee=five[0])  # direct to the absent user: their delegate
    assert route.action == "assign" and route.user == bob and route.on_behalf_of == five[0].pk


def test_available_delegate_must_be_active_and_present(make_item, five, bob, carol):
    now = timezone.now()
    profile(five[0], out_of_office_from=now, delegate=bob)
    profile(bob, out_of_office_from=now)  # the delegate is away too
    profile(five[1], out_of_office_from=now, delegate=carol)
    carol.is_active = False
    carol.save()
    profile(five[2], out_of_office_from=now, delegate=five[3])  # delegate already in the pool: once
    assert ids(constraints.resolve(make_item())) == ["u3", "u4"]


def test_available_empties_the_list_and_route_says_so(svc, team_b, bob):
    q = factories.queue("solo", groups=[team_b], strategy="round_robin")
    profile(bob, out_of_office_from=timezone.now())
    item = factories.item(actor=svc, queue=q)
    assert item.state == State.OFFERED and item.assignee is None
    assert unassigned_reason(item) == "available"


def test_available_delegate_receives_the_push_on_behalf(svc, team_b, bob, carol):
    q = factories.queue("solo-rr", groups=[team_b], strategy="round_robin")
    profile(bob, out_of_office_from=timezone.now(), delegate=carol)
    item = factories.item(actor=svc, queue=q)
    assert item.state == State.ASSIGNED and item.assignee == carol
    record = item.audit_records.get(action="create")
    assert record.data["assignee"] == "carol" and record.data["on_behalf_of"] == bob.pk


def test_capacity_of_the_queue_counts_only_that_queue(svc, team_a, five, sam):
    q = factories.queue("capped", groups=[team_a], capacity_per_user=1)
    other = factories.queue("other", groups=[team_a])
    held_here = factories.item(actor=svc, queue=q)
    services.work_item_assign(item_id=held_here.pk, actor=sam, user=five[0])
    for _ in range(3):
        services.work_item_assign(item_id=factories.item(actor=svc, queue=other).pk, actor=sam, user=five[1])
    res = constraints.resolve(factories.item(actor=svc, queue=q))
    assert ids(res) == ["u1", "u2", "u3", "u4"]
    by_name = {c.username: c for c in res.candidates}
    assert by_name["u1"].load == 3 and by_name["u1"].queue_load == 0


def test_capacity_of_the_profile_counts_every_queue_and_every_held_state(svc, team_a, five, sam):
    other = factories.queue("other", groups=[team_a])
    q = factories.queue("mine", groups=[team_a])
    profile(five[0], capacity=2)
    a = services.work_item_assign(item_id=factories.item(actor=svc, queue=other).pk, actor=sam, user=five[0])
    services.work_item_start(item_id=a.pk, actor=five[0])  # IN_PROGRESS counts
    b = services.work_item_assign(item_id=factories.item(actor=svc, queue=other).pk, actor=sam, user=five[0])
    services.work_item_suspend(item_id=b.pk, actor=sam)  # SUSPENDED while held counts
    item = factories.item(actor=svc, queue=q)
    assert "u0" not in ids(constraints.resolve(item))
    services.work_item_resume(item_id=b.pk, actor=sam)
    services.work_item_release(item_id=b.pk, actor=five[0])  # frees one
    assert "u0" in ids(constraints.resolve(item))


def test_capacity_empties_the_list(svc, team_b, bob, sam):
    q = factories.queue("one-slot", groups=[team_b], capacity_per_user=1, strategy="least_loaded")
    first = factories.item(actor=svc, queue=q)
    assert first.assignee == bob
    second = factories.item(actor=svc, queue=q)
    assert second.state == State.OFFERED and unassigned_reason(second) == "capacity"
    assert constraints.resolve(second).emptied_by == "capacity"
    assert routed(second, "longest_idle").reason == "capacity"


def test_skills(make_item, five):
    profile(five[0], skills={"german": 3, "claims": 1})
    profile(five[1], skills={"german": 9})
    profile(five[2], skills={"claims": 9})
    assert ids(constraints.resolve(make_item(required_skills=["german", "claims"]))) == ["u0"]
    assert ids(constraints.resolve(make_item(required_skills=["german"]))) == ["u0", "u1"]
    res = constraints.resolve(make_item(required_skills=["french"]))
    assert res.candidates == [] and res.emptied_by == "skills"
    assert routed(make_item(required_skills=["french"])).reason == "skills"


def test_excluded(make_item, five):
    assert ids(constraints.resolve(make_item(excluded_users=["u0", "u2"]))) == ["u1", "u3", "u4"]
    everyone = make_item(excluded_users=["u0", "u1", "u2", "u3", "u4"])
    res = constraints.resolve(everyone)
    assert res.candidates == [] and res.emptied_by == "excluded"
    assert routed(everyone, "random").reason == "excluded"


def test_separation_of_duties_blocks_actors_of_the_same_run_and_key(make_item, five):
    run = {"workflow_id": "loan", "run_id": "r-1", "sod_key": "four-eyes"}
    prepare = make_item(**run, task_name="prepare")
    services.work_item_claim(item_id=prepare.pk, actor=five[0])  # holds it
    done = make_item(**run, task_name="check")
    services.work_item_claim(item_id=done.pk, actor=five[1])
    services.work_item_start(item_id=done.pk, actor=five[1])
    services.work_item_complete(item_id=done.pk, actor=five[1], result={})  # acted, holds nothing now
    approve = make_item(**run, task_name="approve")
    assert ids(constraints.resolve(approve)) == ["u2", "u3", "u4"]
    # other run, other key, no key: nobody blocked
    for other in ({**run, "run_id": "r-2"}, {**run, "sod_key": "other"}, {**run, "sod_key": ""}):
        assert len(ids(constraints.resolve(make_item(**other)))) == 5
    with pytest.raises(ConstraintViolated) as exc:
        services.work_item_claim(item_id=approve.pk, actor=five[1])
    assert exc.value.constraint == "separation_of_duties"


def test_separation_of_duties_empties_the_list(svc, team_b, bob):
    q = factories.queue("sod", groups=[team_b], strategy="longest_idle")
    run = {"workflow_id": "wf", "run_id": "r", "sod_key": "k"}
    first = factories.item(actor=svc, queue=q, **run)
    assert first.assignee == bob
    second = factories.item(actor=svc, queue=q, **run)
    assert second.state == State.OFFERED and unassigned_reason(second) == "separation_of_duties"
    assert routed(second, "round_robin").reason == "separation_of_duties"


# --- combined -------------------------------------------------------------------------------------


def test_all_constraints_together_leave_only_who_passes_every_one(svc, team_a, five, bob, sam):
    """u0 inactive, u1 absent (delegate bob), u2 full, u3 unskilled, u4 excluded; bob stands in."""
    q = factories.queue("combo", groups=[team_a], capacity_per_user=1)
    run = {"workflow_id": "wf", "run_id": "r", "sod_key": "k"}
    for u in five + [bob]:
        profile(u, skills={"german": 5})
    five[0].is_active = False
    five[0].save()
    profile(five[1], out_of_office_from=timezone.now(), delegate=bob)
    services.work_item_assign(item_id=factories.item(actor=svc, queue=q).pk, actor=sam, user=five[2])
    profile(five[3], skills={"french": 5})
    body = {**run, "required_skills": ["german"], "excluded_users": ["u4"]}
    res = constraints.resolve(factories.item(actor=svc, queue=q, **body))
    assert ids(res) == ["bob"] and res.emptied_by is None
    # bob acts on a sibling: separation of duties now empties the list, and says so
    uncapped = factories.queue("uncapped")  # so bob's capacity in `combo` is untouched
    sibling = factories.item(actor=svc, queue=uncapped, **run, candidate_users=["bob"])
    services.work_item_claim(item_id=sibling.pk, actor=bob)
    item = factories.item(actor=svc, queue=q, **body, strategy="skill_based")
    assert item.state == State.OFFERED and unassigned_reason(item) == "separation_of_duties"
    assert constraints.resolve(item).emptied_by == "separation_of_duties"


def test_emptied_by_is_the_first_constraint_in_order(make_item, five):
    """Everyone fails something; the reason is the constraint that removed the last one."""
    five[0].is_active = False
    five[0].save()
    for u in five[1:]:
        profile(u, skills={"german": 1})
    item = make_item(required_skills=["german"], excluded_users=["u1", "u2", "u3", "u4"])
    res = constraints.resolve(item)
    assert res.candidates == [] and res.emptied_by == "excluded"
    five[0].is_active = True
    five[0].save()
    assert ids(constraints.resolve(item)) == []  # u0 has no german
    assert constraints.resolve(item).emptied_by == "excluded"  # skills kept u1…u4, excluded removed them
    item2 = make_item(required_skills=["french"], excluded_users=["u0"])
    assert constraints.resolve(item2).emptied_by == "skills"


def test_direct_assignee_is_still_checked_against_the_constraints(svc, queue, five):
    profile(five[0], skills={"german": 1})
    ok = factories.item(actor=svc, queue=queue, assignee="u0", required_skills=["german"])
    assert ok.state == State.ASSIGNED and ok.assignee == five[0]
    refused = factories.item(actor=svc, queue=queue, assignee="u1", required_skills=["german"])
    assert refused.state == State.OFFERED and refused.assignee is None
    assert unassigned_reason(refused) == "skills"
    excluded = factories.item(actor=svc, queue=queue, assignee="u0", excluded_users=["u0"])
    assert excluded.state == State.OFFERED and unassigned_reason(excluded) == "excluded"


def test_route_item_excludes_ids_and_reports_excluded(make_item, five):
    item = make_item()
    route = routed(item, "least_loaded", exclude_ids=[u.pk for u in five[:4]])
    assert route.action == "assign" and route.user == five[4]
    route = routed(item, "least_loaded", exclude_ids=[u.pk for u in five])
    assert route.action == "offer" and route.reason == "excluded"


def test_route_item_is_offer_for_pull_and_when_push_is_off(make_item, five, ws_config):
    item = make_item()
    assert routed(item, "offer").action == "offer" and not routed(item, "offer").unassigned
    ws_config({"features": {"distribution": {"strategies": {"random": False}}}})
    route = routed(item, "random")
    assert route.action == "offer" and "switched off" in route.reason
    ws_config({"assignment": {"push": False}})
    route = routed(item, "least_loaded")
    assert route.action == "offer" and "push" in route.reason
