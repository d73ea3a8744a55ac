"""Capacity is never exceeded: concurrent claimers (threads, one connection each), and a
hypothesis rule-based run of claims, claim-next, releases, completions and supervisor
assignments with the invariant checked after every step."""

from __future__ import annotations

import random
import threading
import time

import pytest
from django.db import transaction
from django.db.models import Count, Q
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from directory.models import Profile
from tests import factories
from tests.distribution.conftest import worker_users
from workitems import services
from workitems.errors import AlreadyClaimed, ConstraintViolated, InvalidTransition, NotAllowed
from workitems.models import HELD_STATES, State, WorkItem

USERS = 50
PERSONAL = 3  # profile capacity: open items across all queues
IN_CAPPED = 2  # capacity_per_user of the capped queue


def held_counts(queue_ids=None) -> dict[int, int]:
    qs = WorkItem.objects.filter(state__in=HELD_STATES, assignee__isnull=False)
    if queue_ids is not None:
        qs = qs.filter(queue_id__in=queue_ids)
    return dict(qs.values("assignee_id").annotate(n=Count("id")).values_list("assignee_id", "n"))


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_fifty_concurrent_claimers_never_exceed_their_capacity(svc, sam, team_a, run_threads):
    """50 users, each driven by two threads at once (claim-next, and claims of random items),
    plus a supervisor assigning to random users; personal capacity 3, 2 in the capped queue."""
    capped = factories.queue("capped", groups=[team_a], capacity_per_user=IN_CAPPED)
    free = factories.queue("free", groups=[team_a])
    users = worker_users("cap", USERS, groups=[team_a])
    Profile.objects.bulk_create([Profile(user=u, capacity=PERSONAL) for u in users])
    bodies = []
    for i in range(USERS * 6):  # interleaved, so every user meets items of both queues early
        bodies.append(factories.item_body(capped if i % 2 == 0 else free))
    item_ids = [it.pk for it in services.work_item_create_many(actor=svc, items=bodies)]
    stop = threading.Event()
    remaining = [2 * USERS + 1]  # every thread but the monitor
    lock = threading.Lock()
    worst = {"total": 0, "capped": 0}

    def monitor(slot):
        """Samples the database while the others work."""
        while not stop.is_set():
            with slot():
                worst["total"] = max(worst["total"], max(held_counts().values(), default=0))
                worst["capped"] = max(worst["capped"], max(held_counts([capped.pk]).values(), default=0))
            time.sleep(0.05)
        return "monitor"

    def supervisor(slot):
        """Pushes random items onto random users, racing their own claims."""
        rng, refused = random.Random(-1), 0  # noqa: S311 - test data
        for _ in range(60):
            with slot():
                try:
                    services.work_item_assign(item_id=rng.choice(item_ids), actor=sam, user=rng.choice(users))
                except ConstraintViolated as exc:
                    assert exc.constraint == "capacity"
                    refused += 1
                except InvalidTransition:
                    pass
        return refused

    def claim_next_until_none(me, slot):
        got = 0
        while True:
            with slot():
                if services.work_item_claim_next(actor=me) is None:
                    return got
                got += 1

    def claim_random(me, seed, slot):
        rng, got = random.Random(seed), 0  # noqa: S311 - test data
        for _ in range(8):
            with slot():
                try:
                    services.work_item_claim(item_id=rng.choice(item_ids), actor=me)
                    got += 1
                except ConstraintViolated as exc:
                    assert exc.constraint == "capacity"
                except AlreadyClaimed:
                    pass
        return got

    def actor(i, slot):
        if i == 0:
            return monitor(slot)
        try:
            if i == 1:
                return supervisor(slot)
            me = users[(i - 2) % USERS]
            return claim_next_until_none(me, slot) if i - 2 < USERS else claim_random(me, i, slot)
        finally:
            with lock:
                remaining[0] -= 1
                if remaining[0] == 0:
                    stop.set()

    run = run_threads(2 * USERS + 2, actor, timeout=300)
    stop.set()
    assert run.errors == [], run.errors[0]
    total, in_capped = held_counts(), held_counts([capped.pk])
    assert max(total.values()) <= PERSONAL and max(in_capped.values()) <= IN_CAPPED
    assert worst["total"] <= PERSONAL and worst["capped"] <= IN_CAPPED
    assert worst["total"] > 0  # the monitor did watch the run
    # capacity, not luck, was the limit: everyone filled up (there were twice as many items)
    assert total == {u.pk: PERSONAL for u in users}
    assert WorkItem.objects.filter(state=State.OFFERED).count() == len(item_ids) - USERS * PERSONAL


# --- hypothesis: sequential steps, the invariant after every one ----------------------------------


class CapacityMachine(RuleBasedStateMachine):
    """Four workers with personal capacities 3, 1, 2 and none; a queue with capacity 2 per user
    and one without; a supervisor. Each rule predicts from the database whether the command
    must succeed or be refused for capacity, and checks that it was."""

    def __init__(self):
        super().__init__()
        self._atomic = transaction.atomic()
        self._atomic.__enter__()
        group = factories.group("cap-team")
        self.capped = factories.queue("cap-capped", groups=[group], capacity_per_user=2)
        self.free = factories.queue("cap-free", groups=[group])
        self.limits = [3, 1, 2, None]
        self.users = [factories.user(f"cap-w{i}", roles=["worker"], groups=[group]) for i in range(4)]
        for u, limit in zip(self.users, self.limits, strict=True):
            Profile.objects.create(user=u, capacity=limit)
        self.sup = factories.user("cap-sup", roles=["supervisor"])
        creator = factories.user("cap-svc", roles=["service"])
        self.items = [
            factories.item(actor=creator, queue=self.capped if i % 2 == 0 else self.free).pk for i in range(8)
        ]

    def teardown(self):
        transaction.set_rollback(True)
        self._atomic.__exit__(None, None, None)

    # what the rules predict with

    def _may_take(self, u_index: int, item: WorkItem) -> bool:
        user, limit = self.users[u_index], self.limits[u_index]
        mine = WorkItem.objects.filter(assignee=user, state__in=HELD_STATES)
        if limit is not None and mine.count() >= limit:
            return False
        return not (item.queue_id == self.capped.pk and mine.filter(queue=self.capped).count() >= 2)

    def _item(self, i) -> WorkItem:
        return WorkItem.objects.get(pk=self.items[i])

    @rule(u=st.integers(0, 3), i=st.integers(0, 7))
    def claim(self, u, i):
        item = self._item(i)
        expect_ok = item.state == State.OFFERED and self._may_take(u, item)
        try:
            services.work_item_claim(item_id=item.pk, actor=self.users[u])
            ok = True
        except ConstraintViolated as exc:
            assert exc.constraint == "capacity"
            ok = False
        except InvalidTransition:
            assert item.state != State.OFFERED
            ok = False
        assert ok == expect_ok

    @rule(u=st.integers(0, 3))
    def claim_next(self, u):
        takeable = [
            it for it in WorkItem.objects.filter(pk__in=self.items, state=State.OFFERED) if self._may_take(u, it)
        ]
        got = services.work_item_claim_next(actor=self.users[u])
        if got is None:
            assert takeable == [], "claim-next found nothing while an item was takeable"
        else:
            assert got.pk in {it.pk for it in takeable}

    @rule(i=st.integers(0, 7))
    def release(self, i):
        item = self._item(i)
        if item.state == State.ASSIGNED:
            services.work_item_release(item_id=item.pk, actor=item.assignee)

    @rule(i=st.integers(0, 7))
    def work_on(self, i):
        item = self._item(i)
        if item.state == State.ASSIGNED:
            services.work_item_start(item_id=item.pk, actor=item.assignee)
        elif item.state == State.IN_PROGRESS:
            services.work_item_complete(item_id=item.pk, actor=item.assignee, result={})

    @rule(u=st.integers(0, 3), i=st.integers(0, 7))
    def supervisor_assigns(self, u, i):
        item = self._item(i)
        expect_ok = item.state == State.OFFERED and self._may_take(u, item)
        try:
            services.work_item_assign(item_id=item.pk, actor=self.sup, user=self.users[u])
            ok = True
        except ConstraintViolated as exc:
            assert exc.constraint == "capacity"
            ok = False
        except (InvalidTransition, NotAllowed):
            assert item.state != State.OFFERED
            ok = False
        assert ok == expect_ok

    @invariant()
    def nobody_over_capacity(self):
        total, capped = held_counts(), held_counts([self.capped.pk])
        for u, limit in zip(self.users, self.limits, strict=True):
            assert capped.get(u.pk, 0) <= 2
            if limit is not None:
                assert total.get(u.pk, 0) <= limit


@pytest.mark.django_db
def test_capacity_holds_after_every_step():
    run_state_machine_as_test(
        CapacityMachine,
        settings=settings(
            max_examples=12,
            stateful_step_count=30,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
        ),
    )


@pytest.mark.django_db
def test_claim_next_returns_none_when_the_caller_is_full(svc, alice, team_a):
    """At personal capacity, claim-next returns None (and claims nothing) with items still offered."""
    q = factories.queue("full", groups=[team_a])
    Profile.objects.create(user=alice, capacity=1)
    factories.item(actor=svc, queue=q)
    factories.item(actor=svc, queue=q)
    assert services.work_item_claim_next(actor=alice) is not None
    assert services.work_item_claim_next(actor=alice) is None
    assert WorkItem.objects.filter(Q(state=State.OFFERED), queue=q).count() == 1


@pytest.mark.django_db
def test_claim_next_looks_past_a_queue_where_the_caller_is_full(svc, alice, team_a):
    capped = factories.queue("capped-one", groups=[team_a], capacity_per_user=1)
    free = factories.queue("free-one", groups=[team_a])
    for _ in range(25):
        factories.item(actor=svc, queue=capped, priority=90)
    takeable = factories.item(actor=svc, queue=free, priority=10)
    first = services.work_item_claim_next(actor=alice)
    assert first.queue_id == capped.pk
    second = services.work_item_claim_next(actor=alice)
    assert second is not None and second.pk == takeable.pk
