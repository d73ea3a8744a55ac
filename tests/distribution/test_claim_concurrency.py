"""Pull under real concurrency: many threads, each with its own PostgreSQL connection,
calling the service layer at once (claim-next with SKIP LOCKED, claim races)."""

from __future__ import annotations

import os
import threading
import time
from collections import Counter

import pytest
from django.db import connection, transaction
from prometheus_client import REGISTRY

from audit.models import AuditRecord
from events.models import OutboxEvent
from tests import factories
from tests.distribution.conftest import create_items, worker_users
from workitems import services
from workitems.errors import AlreadyClaimed
from workitems.models import State, WorkItem

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

THREADS = 100
# The issue asks for 5,000 items. claim-next costs ~30 ms of Python (GIL-bound) per call, so
# 5,000 take minutes in one process; the default keeps the test near a minute on 2 cores.
# DIST_CLAIM_ITEMS=5000 runs the full size.
ITEMS = int(os.environ.get("DIST_CLAIM_ITEMS", "1000"))
BURST = 10  # claims per connection slot before the thread lets another one in


def test_100_threads_claim_next_every_item_claimed_exactly_once(svc, team_a, run_threads):
    q = factories.queue("pull", groups=[team_a])
    workers = worker_users("puller", THREADS, groups=[team_a])
    t0 = time.perf_counter()
    item_ids = create_items(svc, q, ITEMS)
    created_s = time.perf_counter() - t0

    def claimer(i, slot):
        me, mine, done = workers[i], [], False
        while not done:
            with slot():
                for _ in range(BURST):
                    item = services.work_item_claim_next(actor=me, queue="pull")
                    if item is None:
                        done = True
                        break
                    assert item.state == State.ASSIGNED and item.assignee_id == me.pk
                    mine.append(item.pk)
        return mine

    run = run_threads(THREADS, claimer, timeout=240)
    print(f"\ncreated {ITEMS} items in {created_s:.1f}s; {THREADS} threads claimed them in {run.elapsed:.1f}s")
    assert run.errors == [], run.errors[0]
    claimed = [pk for mine in run.results.values() for pk in mine]
    dupes = [pk for pk, n in Counter(claimed).items() if n > 1]
    assert dupes == [], f"claimed more than once: {dupes[:10]}"
    assert sorted(claimed) == sorted(item_ids)
    assert not WorkItem.objects.filter(state=State.OFFERED).exists()
    # the database agrees with what each thread was told, item by item
    holder = dict(WorkItem.objects.values_list("id", "assignee_id"))
    for i, mine in run.results.items():
        assert all(holder[pk] == workers[i].pk for pk in mine)
    claims = Counter(AuditRecord.objects.filter(action="claim").values_list("work_item_id", flat=True))
    assert len(claims) == ITEMS and set(claims.values()) == {1}
    assert OutboxEvent.objects.filter(event_type="workitem.claimed.v1").count() == ITEMS
    # every thread ran until claim-next told it there was nothing left
    assert len(run.results) == THREADS


def test_twenty_threads_claiming_one_item_exactly_one_wins(svc, team_a, run_threads):
    q = factories.queue("race", groups=[team_a])
    workers = worker_users("racer", 20, groups=[team_a])
    item = factories.item(actor=svc, queue=q)
    conflicts_before = REGISTRY.get_sample_value("claim_conflicts_total") or 0

    def claim(i, slot):
        with slot():
            try:
                services.work_item_claim(item_id=item.pk, actor=workers[i])
                return "won"
            except AlreadyClaimed:
                return "lost"

    run = run_threads(20, claim)
    assert run.errors == [], run.errors[0]
    assert Counter(run.results.values()) == {"won": 1, "lost": 19}
    winner = next(workers[i] for i, r in run.results.items() if r == "won")
    item.refresh_from_db()
    assert item.state == State.ASSIGNED and item.assignee == winner and item.version == 2
    assert AuditRecord.objects.filter(work_item=item, action="claim").count() == 1
    assert (REGISTRY.get_sample_value("claim_conflicts_total") or 0) - conflicts_before == 19


def test_claim_next_does_not_hide_claimable_items_from_a_concurrent_caller(svc, team_a, alice, carol):
    """Alice's claim-next is mid-transaction (it has claimed item 1); carol must still get item 2.

    Regression: claim-next used to lock a batch of 20 rows FOR UPDATE SKIP LOCKED and claim
    one, hiding the other 19 from concurrent callers until it committed (fixed in 7e9165e)."""
    q = factories.queue("two", groups=[team_a])
    first = factories.item(actor=svc, queue=q, priority=90)
    second = factories.item(actor=svc, queue=q, priority=10)
    claimed, release = threading.Event(), threading.Event()
    got = {}

    def alice_in_a_long_transaction():
        try:
            with transaction.atomic():
                got["alice"] = services.work_item_claim_next(actor=alice, queue="two")
                claimed.set()
                release.wait(10)
        finally:
            connection.close()

    t = threading.Thread(target=alice_in_a_long_transaction)
    t.start()
    try:
        assert claimed.wait(10)
        assert got["alice"].pk == first.pk
        t0 = time.perf_counter()
        mine = services.work_item_claim_next(actor=carol, queue="two")
        assert time.perf_counter() - t0 < 2  # SKIP LOCKED: never waits on alice
    finally:
        release.set()
        t.join()
    assert mine is not None and mine.pk == second.pk
