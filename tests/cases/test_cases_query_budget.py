"""Joining a case costs a create one statement (the case's row, read and share-locked), and a
bulk create one statement however many cases its items name (tests/workitems/test_query_budget.py
holds the create's own budget)."""

from __future__ import annotations

import pytest

from tests import factories
from tests.querycount import count_statements
from tests.workitems.test_query_budget import BUDGET, fresh
from workitems import services

pytestmark = pytest.mark.django_db


def _count(fn):
    with count_statements() as seen:
        result = fn()
    return result, seen


def test_create_with_a_case_adds_at_most_one_statement(svc, queue, make_case):
    make_case("Q-1", due_at="2031-01-01T00:00:00Z")
    actor = fresh(svc)
    item, seen = _count(lambda: services.work_item_create(actor=actor, data=factories.item_body(queue, case="Q-1")))
    assert item.case_id == "Q-1"
    limit = BUDGET["create (pull queue)"] + 1
    assert len(seen) <= limit, seen.report(f"create with a case is over {limit}")
    again = fresh(svc)
    _, plain = _count(lambda: services.work_item_create(actor=again, data=factories.item_body(queue)))
    assert "FOR KEY SHARE" in seen.counted[1]
    assert len(seen) - len(plain) == 1, seen.report("create with a case") + plain.report("create without")


def test_bulk_create_reads_every_case_in_one_statement(svc, queue, make_case):
    for n in range(5):
        make_case(f"QB-{n}")
    bodies = [factories.item_body(queue, case=f"QB-{n % 5}") for n in range(10)]
    actor, again = fresh(svc), fresh(svc)
    _, with_cases = _count(lambda: services.work_item_create_many(actor=actor, items=bodies))
    plain = [factories.item_body(queue) for _ in range(10)]
    _, without = _count(lambda: services.work_item_create_many(actor=again, items=plain))
    assert len(with_cases) - len(without) == 1, with_cases.report("bulk with cases") + without.report("bulk without")


def test_reading_a_case_costs_the_same_with_more_items(api, svc, alice, queue, make_case):
    """GET /cases/{case_number}: the case, its items (with their lists) and its history are read
    set-wise, so the statement count does not grow with the items (for a worker too)."""
    make_case("R-1")
    make_case("R-2")
    for number, n in (("R-1", 2), ("R-2", 6)):
        for _ in range(n):
            item = factories.item(actor=svc, queue=queue, case=number)
        services.work_item_claim(item_id=item.pk, actor=alice)
    for user in (svc, alice):
        client = api(user)
        counts = []
        for number in ("R-1", "R-2"):
            with count_statements() as seen:
                resp = client.get(f"/api/v1/cases/{number}")
            assert resp.status_code == 200
            counts.append(len(seen))
        assert counts[0] == counts[1], (user.username, counts)
