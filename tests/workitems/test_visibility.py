"""The visibility rule has one definition (`policy.may_see`) and its ORM form
(`policy.visible_filter`: the list, the detail, the lock of every command). On the random
worlds of the candidacy test (users, groups, queues, valid and lapsed role assignments, items
naming users and groups, held items), both agree for every (user, item) pair, and a
supervisor sees everything."""

from __future__ import annotations

import random

import pytest
from django.db import transaction

from tests import factories
from tests.workitems.test_policy import SEEDS, _facts, _world
from workitems import policy
from workitems.models import WorkItem
from workitems.selectors import work_item_list_for


def _sees(user, item) -> bool:
    facts = _facts(user, item)
    return policy.may_see(
        sees_everything=policy.sees_everything(user),
        user_id=user.pk,
        assignee_id=item.assignee_id,
        queue_member=facts["queue_member"],
        item_user_ids=facts["item_user_ids"],
        item_group_ids=facts["item_group_ids"],
        user_group_ids=facts["user_group_ids"],
    )


@pytest.mark.django_db
@pytest.mark.parametrize("seed", SEEDS)
def test_python_and_orm_forms_of_visibility_agree(seed):
    rng = random.Random(seed)  # noqa: S311 - test data
    with transaction.atomic():
        users, _, items = _world(rng)
        users.append(factories.user("p-sup", roles=["supervisor"]))
        ids = [i.pk for i in items]
        seen_somewhere, hidden_somewhere = 0, 0
        for user in users:
            python = {i.pk for i in items if _sees(user, i)}
            orm = set(work_item_list_for(actor=user).filter(pk__in=ids).values_list("id", flat=True))
            assert orm == python, f"seed {seed}, {user.username}: ORM {sorted(orm)} vs rule {sorted(python)}"
            seen_somewhere += len(python)
            hidden_somewhere += len(ids) - len(python)
        assert python == set(ids)  # the supervisor, last: everything
        assert seen_somewhere and hidden_somewhere  # the world is not degenerate
        transaction.set_rollback(True)


@pytest.mark.django_db
def test_the_filter_is_uncorrelated_subqueries_not_exists():
    """The form that keeps the list index-driven: `IN (subquery)` tests, no correlated EXISTS."""
    user = factories.user("v-worker", roles=["worker"], groups=[factories.group("v-team")])
    sql = str(WorkItem.objects.filter(policy.visible_filter(user)).query)
    where = sql[sql.index(" WHERE ") :]
    assert "EXISTS" not in where, where
    # assignee, then the queues by group and by role, then the items naming the user or a group
    assert where.count(' OR "workitems_workitem"') == 4 and where.count(" IN (SELECT") == 5, where
