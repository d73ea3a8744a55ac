"""The filters of GET /workitems (docs/api.md), each returning exactly the expected items."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlencode

import pytest
from django.utils import timezone

from tests import factories
from tests.api.helpers import assert_field_error, assert_problem
from workitems import services


@pytest.fixture
def dataset(svc, alice, carol, bob, sam, team_a, queue):
    """Six items that differ in every filtered attribute; returns {name: id} and the moments used.

    i1 OFFERED, overdue;            i2 ASSIGNED to alice;     i3 IN_PROGRESS (carol), other queue;
    i4 COMPLETED by alice, was due; i5 OFFERED, escalated, alice excluded; i6 OFFERED, only bob named.
    """
    q2 = factories.queue("qa-two", groups=[team_a])
    now = timezone.now()
    past, future = now - timedelta(days=1), now + timedelta(days=1)

    def make(q, **body):
        return factories.item(actor=svc, queue=q, **body)

    i1 = make(queue, workflow_id="wf-A", run_id="r1", task_name="review", priority=10, due_at=past.isoformat())
    i2 = make(queue, workflow_id="wf-A", run_id="r2", task_name="approve", priority=50, due_at=future.isoformat())
    services.work_item_claim(item_id=i2.pk, actor=alice)
    i3 = make(q2, workflow_id="wf-B", run_id="r1", task_name="review", priority=90)
    services.work_item_claim(item_id=i3.pk, actor=carol)
    services.work_item_start(item_id=i3.pk, actor=carol)
    middle = timezone.now()
    i4 = make(queue, workflow_id="wf-B", run_id="r3", task_name="approve", priority=70, due_at=past.isoformat())
    services.work_item_claim(item_id=i4.pk, actor=alice)
    services.work_item_start(item_id=i4.pk, actor=alice)
    services.work_item_complete(item_id=i4.pk, actor=alice, result={"ok": True})
    i5 = make(queue, workflow_id="wf-C", run_id="r5", task_name="triage", priority=30, excluded_users=["alice"])
    services.work_item_escalate(item_id=i5.pk, actor=sam, reason="late")
    i6 = make(q2, workflow_id="wf-C", run_id="r6", task_name="triage", priority=100, candidate_users=["bob"])
    ids = {"i1": i1.pk, "i2": i2.pk, "i3": i3.pk, "i4": i4.pk, "i5": i5.pk, "i6": i6.pk}
    return ids, {"now": now, "middle": middle}


def _iso(dt) -> str:
    return dt.isoformat()


# (query, expected item names); `{now}`/`{middle}` are filled in from the dataset.
CASES = [
    ({"state": ["OFFERED"]}, {"i1", "i5", "i6"}),
    ({"state": ["OFFERED", "ASSIGNED"]}, {"i1", "i2", "i5", "i6"}),
    ({"state": ["COMPLETED", "IN_PROGRESS"]}, {"i3", "i4"}),
    ({"state": ["FAILED"]}, set()),
    ({"queue": "qa-two"}, {"i3", "i6"}),
    ({"queue": "team-a-queue"}, {"i1", "i2", "i4", "i5"}),
    ({"queue": "no-such-queue"}, set()),
    ({"assignee": "carol"}, {"i3"}),
    ({"assignee": "alice"}, {"i2", "i4"}),
    ({"workflow_id": "wf-A"}, {"i1", "i2"}),
    ({"run_id": "r1"}, {"i1", "i3"}),
    ({"task_name": "approve"}, {"i2", "i4"}),
    ({"priority_min": "70"}, {"i3", "i4", "i6"}),
    ({"priority_max": "30"}, {"i1", "i5"}),
    ({"priority_min": "30", "priority_max": "70"}, {"i2", "i4", "i5"}),
    ({"due_before": "{now}"}, {"i1", "i4"}),
    ({"due_after": "{now}"}, {"i2"}),
    ({"overdue": "true"}, {"i1"}),
    ({"overdue": "false"}, {"i2", "i3", "i4", "i5", "i6"}),
    ({"created_before": "{middle}"}, {"i1", "i2", "i3"}),
    ({"created_after": "{middle}"}, {"i4", "i5", "i6"}),
    ({"escalated": "true"}, {"i5"}),
    ({"escalated": "false"}, {"i1", "i2", "i3", "i4", "i6"}),
    ({"state": ["OFFERED"], "queue": "team-a-queue", "priority_max": "20"}, {"i1"}),
    ({"workflow_id": "wf-C", "escalated": "true"}, {"i5"}),
]


@pytest.mark.parametrize(("query", "expected"), CASES, ids=[urlencode(q, doseq=True) for q, _ in CASES])
def test_filter_as_supervisor(api, sam, dataset, query, expected):
    ids, moments = dataset
    params = {k: (v.format(now=_iso(moments["now"]), middle=_iso(moments["middle"])) if isinstance(v, str) else v)
              for k, v in query.items()}  # fmt: skip
    resp = api(sam).get("/api/v1/workitems?" + urlencode(params, doseq=True))
    assert resp.status_code == 200, resp.content
    got = {r["id"] for r in resp.json()["results"]}
    assert got == {ids[name] for name in expected}


@pytest.mark.parametrize(
    ("persona", "query", "expected"),
    [
        ("alice", {"assignee": "me"}, {"i2", "i4"}),
        ("carol", {"assignee": "me"}, {"i3"}),
        ("sam", {"assignee": "me"}, set()),
        ("alice", {"candidate": "me"}, {"i1"}),  # i5 excludes her, i6 names only bob
        ("carol", {"candidate": "me"}, {"i1", "i5"}),
        ("bob", {"candidate": "me"}, {"i6"}),
        ("alice", {"candidate": "me", "state": ["OFFERED"]}, {"i1"}),
        ("alice", {"queue": "qa-two"}, {"i3", "i6"}),
    ],
)
def test_filter_relative_to_the_caller(request, api, dataset, persona, query, expected):
    ids, _ = dataset
    resp = api(request.getfixturevalue(persona)).get("/api/v1/workitems?" + urlencode(query, doseq=True))
    assert resp.status_code == 200, resp.content
    assert {r["id"] for r in resp.json()["results"]} == {ids[name] for name in expected}


def test_times_with_an_offset_are_understood(api, sam, dataset):
    ids, moments = dataset
    shifted = moments["now"].astimezone(timezone.get_fixed_timezone(120)).isoformat()
    resp = api(sam).get("/api/v1/workitems?" + urlencode({"due_before": shifted}))
    assert {r["id"] for r in resp.json()["results"]} == {ids["i1"], ids["i4"]}


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("priority_min=abc", "priority_min"),
        ("priority_max=1.5.2", "priority_max"),
        ("due_before=notadate", "due_before"),
        ("due_after=2026-13-45T00:00:00Z", "due_after"),
        ("created_after=yesterday", "created_after"),
        ("created_before=12:00", "created_before"),
        ("state=NOPE", "state"),
        ("state=OFFERED&state=bogus", "state"),
        ("ordering=title", "ordering"),
        ("ordering=-id", "ordering"),
        ("candidate=you", "candidate"),
        ("colour=red", "colour"),
        ("assigne=me", "assigne"),
    ],
)
def test_bad_filter_is_400_naming_it(api, sam, query, field):
    resp = api(sam).get(f"/api/v1/workitems?{query}")
    body = assert_problem(resp, 400, "validation-error")
    assert_field_error(body, field)
    assert field in body["detail"]


@pytest.mark.parametrize("query", ["overdue=maybe", "escalated=2"])
def test_non_boolean_value_of_a_boolean_filter_is_400(api, sam, query):
    resp = api(sam).get(f"/api/v1/workitems?{query}")
    assert_field_error(assert_problem(resp, 400, "validation-error"), query.split("=")[0])


@pytest.mark.parametrize(
    "query", ["audit_filter=1", "work_item=abc", "after=notadate"], ids=["unknown", "wrong type", "bad time"]
)
def test_audit_bad_filters_are_400(api, sam, query):
    resp = api(sam).get(f"/api/v1/audit?{query}")
    assert_problem(resp, 400, "validation-error")


def test_audit_filters(api, sam, alice, make_item):
    item = make_item()
    services.work_item_claim(item_id=item.pk, actor=alice)
    other = make_item()
    client = api(sam)
    records = client.get(f"/api/v1/audit?work_item={item.pk}").json()["results"]
    assert [r["action"] for r in records] == ["create", "claim"]
    by_alice = client.get("/api/v1/audit?actor=alice").json()["results"]
    assert {(r["work_item"], r["action"]) for r in by_alice} == {(item.pk, "claim")}
    creates = client.get("/api/v1/audit?action=create").json()["results"]
    assert {r["work_item"] for r in creates} == {item.pk, other.pk}
