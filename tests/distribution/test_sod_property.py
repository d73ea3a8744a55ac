"""Separation of duties and exclusions are never violated, whatever the sequence of commands
(hypothesis over random item/user/action sequences, invariant after every step). The items
include a case whose items bind each other across runs (`sod_scope: case`); the invariant is
the rule's definition, policy.sod_bound."""

from __future__ import annotations

from collections import defaultdict
from itertools import combinations

import pytest
from django.db import transaction
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from audit.models import AuditRecord
from distribution.constraints import SOD_ACTIONS
from tests import factories
from workitems import policy, services
from workitems.errors import ConstraintViolated, InvalidTransition, NotAllowed, NotFound, ValidationFailed
from workitems.models import WorkItem

# Refusals a command may legitimately answer with; anything else fails the run.
REFUSALS = (ConstraintViolated, InvalidTransition, NotAllowed, NotFound, ValidationFailed)
N_USERS = 4
# (workflow run, sod_key, excluded users by index, case fields) of each item: two runs share the
# key "four-eyes", one item of run 1 has no key, some items exclude users, and case C-1 holds an
# item of run 2 and two of runs of their own, bound across runs by `sod_scope: case`.
IN_CASE = {"case": "C-1", "sod_scope": "case"}
ITEMS = [
    ("run-1", "four-eyes", (), {}),
    ("run-1", "four-eyes", (0,), {}),
    ("run-1", "four-eyes", (), {}),
    ("run-1", "", (1,), {}),
    ("run-2", "four-eyes", (2, 3), {"case": "C-1"}),
    ("run-2", "four-eyes", (), {}),
    ("run-2", "other-key", (), {}),
    ("run-3", "four-eyes", (), IN_CASE),
    ("run-4", "four-eyes", (1,), IN_CASE),
]


class SoDMachine(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self._atomic = transaction.atomic()
        self._atomic.__enter__()
        group = factories.group("sod-team")
        queue = factories.queue("sod-queue", groups=[group])
        self.users = [factories.user(f"sod-w{i}", roles=["worker"], groups=[group]) for i in range(N_USERS)]
        self.sup = factories.user("sod-sup", roles=["supervisor"])
        creator = factories.user("sod-svc", roles=["service"])
        services.case_create(actor=creator, data={"case_number": "C-1"})
        self.items = [
            factories.item(
                actor=creator,
                queue=queue,
                workflow_id="loan",
                run_id=run,
                sod_key=key,
                excluded_users=[self.users[x].username for x in excluded],
                **case,
            ).pk
            for run, key, excluded, case in ITEMS
        ]
        self.refused = defaultdict(int)

    def teardown(self):
        transaction.set_rollback(True)
        self._atomic.__exit__(None, None, None)

    def _try(self, name, fn, **kw):
        try:
            fn(**kw)
        except REFUSALS as exc:
            self.refused[(name, type(exc).__name__, getattr(exc, "constraint", ""))] += 1

    def _item(self, i) -> WorkItem:
        return WorkItem.objects.select_related("assignee").get(pk=self.items[i])

    @rule(u=st.integers(0, N_USERS - 1), i=st.integers(0, len(ITEMS) - 1))
    def claim(self, u, i):
        self._try("claim", services.work_item_claim, item_id=self.items[i], actor=self.users[u])

    @rule(u=st.integers(0, N_USERS - 1))
    def claim_next(self, u):
        got = services.work_item_claim_next(actor=self.users[u])
        if got is not None:
            assert got.pk in self.items and got.assignee_id == self.users[u].pk

    @rule(i=st.integers(0, len(ITEMS) - 1))
    def start(self, i):
        item = self._item(i)
        if item.assignee is not None:
            self._try("start", services.work_item_start, item_id=item.pk, actor=item.assignee)

    @rule(i=st.integers(0, len(ITEMS) - 1))
    def complete(self, i):
        item = self._item(i)
        if item.assignee is not None:
            self._try("complete", services.work_item_complete, item_id=item.pk, actor=item.assignee, result={})

    @rule(i=st.integers(0, len(ITEMS) - 1))
    def release(self, i):
        item = self._item(i)
        if item.assignee is not None:
            self._try("release", services.work_item_release, item_id=item.pk, actor=item.assignee)

    @rule(i=st.integers(0, len(ITEMS) - 1), u=st.integers(0, N_USERS - 1), by_supervisor=st.booleans())
    def delegate(self, i, u, by_supervisor):
        item = self._item(i)
        if item.assignee is not None:
            actor = self.sup if by_supervisor else item.assignee
            self._try("delegate", services.work_item_delegate, item_id=item.pk, actor=actor, user=self.users[u])

    @rule(i=st.integers(0, len(ITEMS) - 1), u=st.integers(0, N_USERS - 1))
    def assign(self, i, u):
        self._try("assign", services.work_item_assign, item_id=self.items[i], actor=self.sup, user=self.users[u])

    @invariant()
    def separation_of_duties_holds(self):
        items = {it.pk: it for it in WorkItem.objects.filter(pk__in=self.items)}
        involved: dict[int, set[int]] = defaultdict(set)  # user → items acted on or held
        for it in items.values():
            if it.assignee_id:
                involved[it.assignee_id].add(it.pk)
        acted = AuditRecord.objects.filter(work_item_id__in=self.items, action__in=SOD_ACTIONS, actor__isnull=False)
        for item_id, actor_id in acted.values_list("work_item_id", "actor_id"):
            involved[actor_id].add(item_id)
        broken = {
            (user, a, b)
            for user, ids in involved.items()
            for a, b in combinations(sorted(ids), 2)
            if policy.sod_bound(items[a], items[b])
        }
        assert broken == set(), f"a user acted on two items bound by separation of duties: {broken}"

    @invariant()
    def no_excluded_user_holds_an_item(self):
        through = WorkItem.excluded_users.through.objects.filter(workitem_id__in=self.items)
        excluded = set(through.values_list("workitem_id", "user_id"))
        held = set(WorkItem.objects.filter(pk__in=self.items, assignee__isnull=False).values_list("id", "assignee_id"))
        assert not excluded & held, f"an excluded user holds an item: {excluded & held}"
        claimed = set(
            AuditRecord.objects.filter(work_item_id__in=self.items, action__in=SOD_ACTIONS).values_list(
                "work_item_id", "actor_id"
            )
        )
        assert not excluded & claimed, f"an excluded user acted on an item: {excluded & claimed}"


@pytest.mark.django_db
def test_separation_of_duties_and_exclusions_are_never_violated():
    run_state_machine_as_test(
        SoDMachine,
        settings=settings(
            max_examples=15,
            stateful_step_count=30,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
        ),
    )


@pytest.mark.django_db
def test_the_machine_really_exercises_refusals():
    """A fixed run of the machine: SoD and exclusion refusals do happen (the property is not vacuous)."""
    m = SoDMachine()
    try:
        m.claim(0, 0)  # w0 claims item 0 of run-1 / four-eyes
        m.claim(0, 2)  # same run and key: refused
        m.claim(0, 1)  # excluded (and SoD)
        m.claim(2, 4)  # excluded in run-2
        m.claim(0, 5)  # run-2: allowed
        m.start(0)
        m.delegate(0, 1, by_supervisor=True)  # to w1
        m.claim(1, 2)  # w1 holds item 0: refused
        m.assign(2, 0)  # supervisor pushes item 2 onto w0, who acted on item 0: refused
        m.claim(2, 7)  # w2 takes item 7 (case C-1, run 3)
        m.claim(2, 8)  # item 8 is of run 4, but bound to item 7 through the case: refused
        m.separation_of_duties_holds()
        m.no_excluded_user_holds_an_item()
        constraints = {c for (_, kind, c) in m.refused if kind == "ConstraintViolated"}
        assert {"separation_of_duties", "candidate"} <= constraints
        assert m.refused[("assign", "ConstraintViolated", "separation_of_duties")] == 1
        assert WorkItem.objects.get(pk=m.items[0]).assignee == m.users[1]
        assert WorkItem.objects.get(pk=m.items[5]).assignee == m.users[0]
        assert WorkItem.objects.get(pk=m.items[7]).assignee == m.users[2]
        assert WorkItem.objects.get(pk=m.items[8]).assignee is None
        assert m.refused[("claim", "ConstraintViolated", "separation_of_duties")] == 3  # items 2 (twice) and 8
    finally:
        m.teardown()
