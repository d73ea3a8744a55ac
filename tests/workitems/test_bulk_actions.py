"""Bulk actions (POST /workitems/bulk/{claim,reassign,cancel,move}): each item through its own
command; per item by default (each its own transaction, each outcome listed in the order asked),
or all or nothing (`atomic`: the first refusal is the answer and nothing changed)."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from audit.models import AuditRecord
from tests import factories
from tests.factories import observed
from workitems import services
from workitems.errors import ValidationFailed
from workitems.models import State, WorkItem


def refs(*items, stale=()):
    return [{"id": i.pk, "version": i.version + (5 if i in stale else 0)} for i in items]


def test_bulk_claim_per_item_lists_each_outcome_in_the_order_asked(make_item, alice, svc):
    a, b, c = make_item(), make_item(), make_item()
    b = services.work_item_cancel(item_id=b.pk, actor=svc)
    outcomes = services.work_items_bulk(action="claim", actor=alice, items=refs(c, b, a))
    assert [o.item_id for o in outcomes] == [c.pk, b.pk, a.pk]
    assert [o.error.kind if o.error else "ok" for o in outcomes] == ["ok", "invalid-transition", "ok"]
    assert {WorkItem.objects.get(pk=x.pk).state for x in (a, c)} == {State.ASSIGNED}
    assert WorkItem.objects.get(pk=b.pk).state == State.CANCELLED


def test_bulk_atomic_rolls_everything_back_on_the_first_refusal(make_item, alice):
    a, b = make_item(), make_item()
    before = [observed(a.pk), observed(b.pk)]
    with pytest.raises(services.BulkRefused) as exc:
        services.work_items_bulk(action="claim", actor=alice, items=refs(a, b, stale=(b,)), atomic=True)
    assert (exc.value.outcome.index, exc.value.outcome.item_id, exc.value.kind) == (1, b.pk, "stale-version")
    assert [observed(a.pk), observed(b.pk)] == before  # a's claim was rolled back too
    done = services.work_items_bulk(action="claim", actor=alice, items=refs(a, b), atomic=True)
    assert all(o.error is None and o.item.state == State.ASSIGNED for o in done)


def test_bulk_reassign_cancel_and_move_use_each_actions_command(make_item, alice, carol, sam, svc, team_a):
    held = services.work_item_claim(item_id=make_item().pk, actor=alice)
    offered = make_item()
    out = services.work_items_bulk(action="reassign", actor=sam, items=refs(held, offered), args={"user": "carol"})
    assert [o.item.assignee_id for o in out] == [carol.pk, carol.pk]
    assert [AuditRecord.objects.filter(work_item_id=o.item_id).latest("seq").action for o in out] == [
        "delegate",
        "assign",
    ]
    other = factories.queue("bulk-elsewhere", groups=[team_a])
    fresh = make_item()
    moved = services.work_items_bulk(action="move", actor=sam, items=[{"id": fresh.pk}], args={"queue": other.name})
    assert moved[0].item.queue_id == other.pk
    gone = services.work_items_bulk(action="cancel", actor=svc, items=[{"id": fresh.pk}], args={"reason": "dup"})
    assert gone[0].item.state == State.CANCELLED


@pytest.mark.parametrize(
    ("items", "args", "field"),
    [
        ([], {}, "items"),
        ("1,2", {}, "items"),
        ([{"id": 0}], {}, "items[0].id"),
        ([{"id": True}], {}, "items[0].id"),
        ([{"id": 3, "version": "2"}], {}, "items[0].version"),
        ([{"id": 3, "colour": "red"}], {}, "items[0]"),
        ([{"id": 3}], {"queue": "x"}, "queue"),  # claim takes no queue
    ],
)
def test_bad_bulk_input_is_refused_before_anything_runs(make_item, alice, items, args, field):
    item = make_item()
    before = observed(item.pk)
    with pytest.raises(ValidationFailed) as exc:
        services.work_items_bulk(action="claim", actor=alice, items=items, args=args)
    assert field in {e["field"] for e in exc.value.errors}
    assert observed(item.pk) == before


def test_over_rest_per_item_and_atomic(make_item, alice, bob, api_as):
    a, b = make_item(), make_item()
    ok = api_as(alice).post("/api/v1/workitems/bulk/claim", {"items": refs(a, b, stale=(b,))}, format="json")
    assert ok.status_code == 200, ok.content
    body = ok.json()
    assert (body["succeeded"], body["failed"]) == (1, 1)
    assert body["results"][0]["status"] == 200 and body["results"][0]["item"]["assignee"] == "alice"
    assert body["results"][1]["status"] == 412 and body["results"][1]["problem"]["type"].endswith("stale-version")

    c, d = make_item(), make_item()
    refused = api_as(alice).post(
        "/api/v1/workitems/bulk/claim", {"items": refs(c, d, stale=(d,)), "atomic": True}, format="json"
    )
    assert refused.status_code == 412
    problem = refused.json()
    assert (problem["index"], problem["id"]) == (1, d.pk) and f"work item {d.pk}" in problem["detail"]
    assert WorkItem.objects.get(pk=c.pk).state == State.OFFERED

    unknown = api_as(alice).post("/api/v1/workitems/bulk/claim", {"items": refs(c), "user": "x"}, format="json")
    assert unknown.status_code == 400 and unknown.json()["errors"][0]["field"] == "user"
    missing = api_as(alice).post("/api/v1/workitems/bulk/move", {"items": refs(c)}, format="json")
    assert missing.status_code == 400 and missing.json()["errors"][0]["field"] == "queue"
    # a worker of team B sees none of these: each is a 404 of its own
    hidden = api_as(bob).post("/api/v1/workitems/bulk/claim", {"items": refs(c)}, format="json")
    assert hidden.json()["results"][0]["status"] == 404


@pytest.mark.django_db(transaction=True)
def test_two_bulk_claims_over_the_same_items_in_opposite_orders_do_not_deadlock(svc, queue, alice, carol):
    items = [factories.item(actor=svc, queue=queue) for _ in range(20)]
    ids = [{"id": i.pk} for i in items]
    results: dict[str, list] = {}

    def claim(user, order):
        try:
            results[user.username] = services.work_items_bulk(action="claim", actor=user, items=order)
        finally:
            connection.close()

    threads = [
        threading.Thread(target=claim, args=(alice, ids)),
        threading.Thread(target=claim, args=(carol, list(reversed(ids)))),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads)
    won = [o for outs in results.values() for o in outs if o.error is None]
    lost = [o for outs in results.values() for o in outs if o.error is not None]
    assert len(won) == 20 and len(lost) == 20  # each item claimed exactly once, no deadlock error
    assert {o.error.kind for o in lost} <= {"already-claimed", "invalid-transition"}
