"""The candidacy rule has one definition (`policy.may_claim`) and three derived forms: the ORM
filter (`policy.claimable_filter`: claim, the `claimable` filter, the embedded SQLite walk),
the SQL fragments of claim-next's index walk on PostgreSQL, and distribution's pool (who could
be pushed the item before constraints). On random worlds of users, groups, queues, valid and
lapsed role assignments and items, all four agree for every (user, item) pair."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from directory.models import Department, Profile, Role, RoleAssignment
from distribution.constraints import pool_user_ids
from tests import factories
from workitems import policy
from workitems.models import Queue, State, WorkItem
from workitems.selectors import claim_next_candidate_ids

N_USERS, N_GROUPS, N_QUEUES, N_ITEMS = 6, 3, 3, 24
SEEDS = range(12)


def _sample(rng: random.Random, population, p: float) -> list:
    return [x for x in population if rng.random() < p]


def _world(rng: random.Random):
    now = timezone.now()
    groups = [factories.group(f"pg{i}") for i in range(N_GROUPS)]
    users = [factories.user(f"pu{i}", roles=["worker"], groups=_sample(rng, groups, 0.4)) for i in range(N_USERS)]
    queues = [factories.queue(f"pq{i}", groups=_sample(rng, groups, 0.4)) for i in range(N_QUEUES)]
    role = Role.objects.create(code="p-role", name="p-role")
    role.queues.set(_sample(rng, queues, 0.5))
    for u in _sample(rng, users, 0.4):
        lapsed = rng.random() < 0.3  # a role assignment that ended yesterday grants nothing
        RoleAssignment.objects.create(
            user=u,
            role=role,
            valid_from=now - timedelta(days=3),
            valid_to=now - timedelta(days=1) if lapsed else None,
        )
    # a department tree (a root, two children, a grandchild); most users in one of them
    root = Department.objects.create(code="p-root", name="root")
    left = Department.objects.create(code="p-left", name="left", parent=root)
    right = Department.objects.create(code="p-right", name="right", parent=root)
    deep = Department.objects.create(code="p-deep", name="deep", parent=left)
    departments = [root, left, right, deep]
    for u in users:
        if rng.random() < 0.8:
            Profile.objects.create(user=u, department=rng.choice(departments))
    items = []
    for _ in range(N_ITEMS):
        department = rng.choice(departments) if rng.random() < 0.5 else None
        item = factories.unrouted_item(queue=rng.choice(queues), department=department)
        item.candidate_users.set(_sample(rng, users, 0.15))
        item.candidate_groups.set(_sample(rng, groups, 0.15))
        item.excluded_users.set(_sample(rng, users, 0.1))
        state = rng.choice([State.OFFERED, State.OFFERED, State.OFFERED, State.ASSIGNED])
        reserved = rng.choice(users) if state == State.OFFERED and rng.random() < 0.15 else None
        holder = rng.choice(users) if state == State.ASSIGNED else None
        WorkItem.objects.filter(pk=item.pk).update(state=state, reserved_for=reserved, assignee=holder)
        items.append(WorkItem.objects.get(pk=item.pk))
    return users, queues, items


def _facts(user, item) -> dict:
    """What the Python predicate is given, read plainly from the tables."""
    now = timezone.now()
    user_groups = set(user.groups.values_list("id", flat=True))
    queue_groups = set(item.queue.candidate_groups.values_list("id", flat=True))
    role_queues = set(
        Role.queues.through.objects.filter(
            role__assignments__in=RoleAssignment.objects.valid_at(now).filter(user=user)
        ).values_list("queue_id", flat=True)
    )
    return {
        "state": item.state,
        "user_id": user.pk,
        "user_group_ids": user_groups,
        "queue_member": bool(user_groups & queue_groups) or item.queue_id in role_queues,
        "item_user_ids": set(item.candidate_users.values_list("id", flat=True)),
        "item_group_ids": set(item.candidate_groups.values_list("id", flat=True)),
        "excluded_ids": set(item.excluded_users.values_list("id", flat=True)),
        "reserved_for_id": item.reserved_for_id,
        "item_department_id": item.department_id,
        "user_department_ids": _up(user),
    }


def _up(user) -> set[int]:
    """The user's department and its ancestors, walked plainly one row at a time."""
    profile = Profile.objects.filter(user=user).first()
    found, department = set(), profile.department if profile else None
    while department is not None:
        found.add(department.pk)
        department = department.parent
    return found


@pytest.mark.django_db
@pytest.mark.parametrize("seed", SEEDS)
def test_python_orm_sql_and_pool_forms_of_candidacy_agree(seed):
    rng = random.Random(seed)
    with transaction.atomic():
        users, _, items = _world(rng)
        item_ids = [i.pk for i in items]
        claimable_somewhere = 0
        for user in users:
            python = {i.pk for i in items if policy.may_claim(**_facts(user, i))}
            orm = set(
                WorkItem.objects.filter(policy.claimable_filter(user), pk__in=item_ids).values_list("id", flat=True)
            )
            # claim-next walks the user's member queues: policy.queue_member_filter's (its claimer read's)
            member = Queue.objects.filter(policy.queue_member_filter(user, queue_ref="pk"), active=True)
            queue_ids = sorted(member.values_list("id", flat=True))
            sql = set(claim_next_candidate_ids(actor=user, queue_ids=queue_ids, only_queues=None, k=10 * N_ITEMS))
            assert orm == python, f"seed {seed}, {user.username}: ORM {sorted(orm)} vs rule {sorted(python)}"
            assert sql == python, f"seed {seed}, {user.username}: SQL {sorted(sql)} vs rule {sorted(python)}"
            claimable_somewhere += len(python)
        for item in items:
            # The pool is candidacy seen from the item, before state, reservation and exclusion.
            pool = pool_user_ids(item)
            expected = {
                u.pk
                for u in users
                if policy.may_claim(
                    **{**_facts(u, item), "state": State.OFFERED, "excluded_ids": (), "reserved_for_id": None}
                )
            }
            assert pool & {u.pk for u in users} == expected, f"seed {seed}, item {item.pk}"
        assert claimable_somewhere > 0  # the world is not degenerate
        transaction.set_rollback(True)


def test_may_claim_rule_by_hand():
    base = {
        "state": State.OFFERED,
        "user_id": 1,
        "user_group_ids": {10},
        "queue_member": False,
        "item_user_ids": set(),
        "item_group_ids": set(),
        "excluded_ids": set(),
        "reserved_for_id": None,
        "item_department_id": None,
        "user_department_ids": set(),
    }
    assert not policy.may_claim(**base)  # names nobody, not a member of its queue
    assert policy.may_claim(**{**base, "queue_member": True})
    assert policy.may_claim(**{**base, "item_group_ids": {10}})  # named through a group, any queue
    assert not policy.may_claim(**{**base, "queue_member": True, "item_user_ids": {2}})  # names someone else
    assert not policy.may_claim(**{**base, "queue_member": True, "excluded_ids": {1}})
    assert not policy.may_claim(**{**base, "queue_member": True, "reserved_for_id": 2})
    assert policy.may_claim(**{**base, "queue_member": True, "reserved_for_id": 1})
    assert not policy.may_claim(**{**base, "queue_member": True, "state": State.ASSIGNED})
    # an item of department 5 is for its subtree: users whose chain up the tree passes 5
    assert policy.may_claim(**{**base, "queue_member": True, "item_department_id": 5, "user_department_ids": {7, 5, 1}})
    assert not policy.may_claim(**{**base, "queue_member": True, "item_department_id": 5, "user_department_ids": {1}})
    assert not policy.may_claim(**{**base, "item_user_ids": {1}, "item_department_id": 5})
