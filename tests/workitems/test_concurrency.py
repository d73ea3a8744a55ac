"""Real concurrency on real PostgreSQL: threads, each with its own connection, racing on rows.

These tests commit (transaction=True), so every thread sees the fixtures' rows. To make
the races real rather than lucky, the winner holds its row lock a little longer: a
short sleep before the audit record (inside the command's transaction, after the
transition). The losers are then waiting on the lock, not arriving after the fact.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
from django.db import connection

from audit import services as audit_services
from audit.models import AuditRecord
from events.models import OutboxEvent
from tests import factories
from tests.factories import observed
from workitems import services
from workitems.errors import AlreadyClaimed, ConstraintViolated, StaleVersion
from workitems.models import WorkItem

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


@pytest.fixture
def slow_audit(monkeypatch):
    """Hold each command's locks ~0.2 s longer (between the transition and its audit record)."""

    def slow_record(**kwargs):
        time.sleep(0.2)
        return audit_services.audit_record(**kwargs)

    monkeypatch.setattr(services._core, "audit_record", slow_record)


def race(n: int, fn: Callable[[int], object]) -> list[tuple[str, object]]:
    """Run fn(0) … fn(n-1) in n threads released together; ("ok", result) or ("err", exception)."""
    barrier = threading.Barrier(n)
    results: list[tuple[str, object]] = [("err", RuntimeError("thread did not finish"))] * n

    def run(i: int) -> None:
        try:
            barrier.wait(timeout=10)
            results[i] = ("ok", fn(i))
        except Exception as exc:  # the test inspects whatever was raised
            results[i] = ("err", exc)
        finally:
            connection.close()  # this thread's own connection

    threads = [threading.Thread(target=run, args=(i,), name=f"racer-{i}") for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads), "a racer hung"
    return results


def test_two_writers_at_the_same_version_one_wins_one_is_stale(make_item, alice, sam, slow_audit):
    item = make_item()
    item = services.work_item_claim(item_id=item.pk, actor=alice)
    start = observed(item.pk)
    version = start["version"]

    def write(i: int):
        if i == 0:
            return services.work_item_start(item_id=item.pk, actor=alice, expected_version=version)
        return services.work_item_suspend(item_id=item.pk, actor=sam, reason="hold", expected_version=version)

    results = race(2, write)
    winners = [r for kind, r in results if kind == "ok"]
    losers = [r for kind, r in results if kind == "err"]
    assert len(winners) == 1 and len(losers) == 1, results
    assert isinstance(losers[0], StaleVersion), losers[0]
    assert (losers[0].expected, losers[0].current) == (version, version + 1)

    end = observed(item.pk)
    assert end["version"] == version + 1
    assert end["audit"] == start["audit"] + 1
    assert end["outbox"] == start["outbox"] + 1
    # the row is the winner's, not a mix of the two
    assert end["state"] == winners[0].state
    last = AuditRecord.objects.filter(work_item_id=item.pk).order_by("-seq").first()
    assert last.action == ("start" if winners[0].state == "IN_PROGRESS" else "suspend")
    assert audit_services.audit_verify(stream=f"workitem:{item.pk}").ok


def test_many_claimers_of_one_offered_item_exactly_one_wins(svc, queue, team_a, slow_audit):
    workers = [factories.user(f"w{i}", roles=["worker"], groups=[team_a]) for i in range(6)]
    item = factories.item(actor=svc, queue=queue)

    results = race(len(workers), lambda i: services.work_item_claim(item_id=item.pk, actor=workers[i]))
    winners = [(i, r) for i, (kind, r) in enumerate(results) if kind == "ok"]
    losers = [r for kind, r in results if kind == "err"]
    assert len(winners) == 1, results
    assert len(losers) == len(workers) - 1
    assert all(isinstance(e, AlreadyClaimed) for e in losers), losers
    assert all(e.state == "ASSIGNED" for e in losers)

    row = WorkItem.objects.get(pk=item.pk)
    assert (row.state, row.version, row.assignee_id) == ("ASSIGNED", 2, workers[winners[0][0]].pk)
    assert AuditRecord.objects.filter(work_item=row, action="claim").count() == 1
    assert list(
        OutboxEvent.objects.filter(aggregate_id=str(item.pk)).order_by("sequence").values_list("event_type", flat=True)
    ) == ["workitem.created.v1", "workitem.claimed.v1"]


def test_concurrent_claims_cannot_overrun_capacity(svc, alice, team_a, slow_audit):
    """Two claims by one user on two items of a capacity-1 queue: the user-row lock orders them."""
    q = factories.queue("capacity-one", groups=[team_a], capacity_per_user=1)
    items = [factories.item(actor=svc, queue=q) for _ in range(2)]

    results = race(2, lambda i: services.work_item_claim(item_id=items[i].pk, actor=alice))
    kinds = sorted(kind for kind, _ in results)
    assert kinds == ["err", "ok"], results
    error = next(r for kind, r in results if kind == "err")
    assert isinstance(error, ConstraintViolated) and error.constraint == "capacity"
    assert WorkItem.objects.filter(queue=q, assignee=alice).count() == 1
    assert WorkItem.objects.filter(queue=q, state="OFFERED").count() == 1
