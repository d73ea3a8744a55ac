"""Separation of duties across a case (`sod_scope: case`): the rule's two forms agree on random
cases (policy.sod_bound, the definition, and policy.sod_siblings_filter, which distribution's
constraint runs), and claim, claim-next, assign and push distribution honour it."""

from __future__ import annotations

import pytest
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from distribution.constraints import sod_blocked_ids
from tests import factories
from workitems import policy, services
from workitems.errors import ConstraintViolated
from workitems.models import WorkItem

pytestmark = pytest.mark.django_db

SPEC = st.tuples(
    st.sampled_from(["wf-1", "wf-2"]),
    st.sampled_from(["run-1", "run-2"]),
    st.sampled_from(["", "four-eyes", "other"]),
    st.sampled_from([None, "CA", "CB"]),
    st.booleans(),  # case scope (when the item has a case)
)


@given(specs=st.lists(SPEC, min_size=2, max_size=8))
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_the_sql_and_python_forms_of_the_rule_agree(specs, svc, queue):
    with transaction.atomic():
        services.case_create(actor=svc, data={"case_number": "CA"})
        services.case_create(actor=svc, data={"case_number": "CB"})
        for workflow, run, key, case, scoped in specs:
            body = {"workflow_id": workflow, "run_id": run, "sod_key": key}
            if case:
                body.update(case=case, sod_scope="case" if scoped else "run")
            factories.item(actor=svc, queue=queue, **body)
        items = list(WorkItem.objects.all())
        for item in items:
            by_sql = set(WorkItem.objects.filter(policy.sod_siblings_filter(item)).values_list("pk", flat=True))
            by_python = {other.pk for other in items if policy.sod_bound(item, other)}
            assert by_sql == by_python, (item.pk, item.case_id, item.sod_scope, by_sql, by_python)
            assert all(policy.sod_bound(other, item) for other in items if policy.sod_bound(item, other))
        transaction.set_rollback(True)


def _pair(svc, queue, scopes=("case", "case"), runs=("run-1", "run-2"), case="SOD-1"):
    services.case_create(actor=svc, data={"case_number": case})
    return [
        factories.item(
            actor=svc, queue=queue, workflow_id="loan", run_id=run, sod_key="four-eyes", case=case, sod_scope=sc
        )
        for sc, run in zip(scopes, runs, strict=True)
    ]


def test_case_scope_binds_items_of_different_runs(svc, queue, alice, carol):
    first, second = _pair(svc, queue)
    services.work_item_claim(item_id=first.pk, actor=alice)
    with pytest.raises(ConstraintViolated) as refused:
        services.work_item_claim(item_id=second.pk, actor=alice)
    assert refused.value.constraint == "separation_of_duties"
    assert "case SOD-1" in refused.value.detail
    assert services.work_item_claim(item_id=second.pk, actor=carol).assignee_id == carol.pk


def test_run_scope_leaves_other_runs_of_the_case_free(svc, queue, alice):
    first, second = _pair(svc, queue, scopes=("run", "run"))
    services.work_item_claim(item_id=first.pk, actor=alice)
    assert services.work_item_claim(item_id=second.pk, actor=alice).assignee_id == alice.pk


@pytest.mark.parametrize("order", [(0, 1), (1, 0)])
def test_one_item_in_case_scope_binds_both_ways(svc, queue, alice, order):
    items = _pair(svc, queue, scopes=("run", "case"))
    services.work_item_claim(item_id=items[order[0]].pk, actor=alice)
    with pytest.raises(ConstraintViolated):
        services.work_item_claim(item_id=items[order[1]].pk, actor=alice)


def test_claim_next_passes_over_the_bound_item(svc, queue, alice):
    first, second = _pair(svc, queue)
    services.work_item_claim(item_id=first.pk, actor=alice)
    assert services.work_item_claim_next(actor=alice) is None
    assert WorkItem.objects.get(pk=second.pk).state == "OFFERED"


def test_assign_and_push_distribution_honour_the_case(svc, sam, team_a, alice, carol):
    services.case_create(actor=svc, data={"case_number": "PUSH-1"})
    push = factories.queue("push-q", groups=[team_a], strategy="round_robin")
    body = {"sod_key": "four-eyes", "case": "PUSH-1", "sod_scope": "case"}
    first = factories.item(actor=svc, queue=push, workflow_id="a", run_id="1", **body)
    assert first.assignee_id in (alice.pk, carol.pk)
    for n in range(3):  # every later item of the case goes to the other one
        later = factories.item(actor=svc, queue=push, workflow_id="b", run_id=str(n), **body)
        assert later.state == "OFFERED" or later.assignee_id != first.assignee_id
    assert sod_blocked_ids(later, [alice.pk, carol.pk]) >= {first.assignee_id}
    offered = factories.item(actor=svc, queue=factories.queue("pull-q", groups=[team_a]), workflow_id="c", **body)
    with pytest.raises(ConstraintViolated):
        services.work_item_assign(item_id=offered.pk, actor=sam, user=first.assignee)
