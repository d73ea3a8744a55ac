"""The /cases API: create, read with items and routing history, close and reopen, the `case`
member of a create (single, bulk) and the `case` filter of GET /workitems."""

from __future__ import annotations

import pytest

from audit.models import AuditRecord
from audit.services import audit_verify
from tests import factories
from workitems.models import Case

pytestmark = pytest.mark.django_db


def _create(api, user, queue, **fields):
    return api(user).post("/api/v1/workitems", factories.item_body(queue, **fields), format="json")


def test_create_a_case_then_items_join_it_by_number(api, svc, queue):
    resp = api(svc).post(
        "/api/v1/cases",
        {"case_number": "CLM-2026-1", "title": "Water damage", "data": {"policy": "P-9"}},
        format="json",
    )
    assert resp.status_code == 201, resp.content
    body = resp.json()
    assert resp["Location"].endswith("/api/v1/cases/CLM-2026-1")
    assert resp["ETag"] == '"1"'
    assert (body["case_number"], body["title"], body["state"], body["data"]) == (
        "CLM-2026-1",
        "Water damage",
        "open",
        {"policy": "P-9"},
    )
    first = _create(api, svc, queue, case="CLM-2026-1", task_name="assess")
    second = _create(api, svc, queue, case="CLM-2026-1", task_name="approve")
    _create(api, svc, queue)  # not in the case
    assert first.status_code == second.status_code == 201
    assert first.json()["case"] == "CLM-2026-1"

    detail = api(svc).get("/api/v1/cases/CLM-2026-1")
    assert detail.status_code == 200
    got = detail.json()
    assert [i["task_name"] for i in got["items"]] == ["assess", "approve"]
    ids = {first.json()["id"], second.json()["id"]}
    history = got["history"]
    assert history[0]["action"] == "case.create" and history[0]["work_item"] is None
    assert [r["action"] for r in history if r["work_item"]] == ["create", "create"]
    assert {r["work_item"] for r in history if r["work_item"]} == ids
    assert [r["id"] for r in history] == sorted(r["id"] for r in history)

    listed = api(svc).get("/api/v1/workitems", {"case": "CLM-2026-1"}).json()["results"]
    assert {i["id"] for i in listed} == ids


def test_routing_history_is_every_record_of_the_items_in_order(api, svc, alice, queue, make_case):
    make_case("C-7")
    a = _create(api, svc, queue, case="C-7").json()["id"]
    b = _create(api, svc, queue, case="C-7").json()["id"]
    assert api(alice).post(f"/api/v1/workitems/{b}/claim").status_code == 200
    assert api(alice).post(f"/api/v1/workitems/{a}/claim").status_code == 200
    assert api(alice).post(f"/api/v1/workitems/{b}/start").status_code == 200
    history = api(svc).get("/api/v1/cases/C-7").json()["history"]
    steps = [(r["work_item"], r["action"]) for r in history if r["work_item"]]
    assert steps == [(a, "create"), (b, "create"), (b, "claim"), (a, "claim"), (b, "start")]
    expected = list(AuditRecord.objects.filter(work_item_id__in=[a, b]).order_by("id").values_list("id", flat=True))
    assert [r["id"] for r in history if r["work_item"]] == expected


def test_unknown_case_is_404_and_nothing_is_created(api, svc, queue):
    resp = _create(api, svc, queue, case="NOPE-1")
    assert resp.status_code == 404
    assert resp["Content-Type"].startswith("application/problem+json")
    assert "NOPE-1" in resp.json()["detail"]
    bulk = api(svc).post(
        "/api/v1/workitems/bulk",
        {"items": [factories.item_body(queue), factories.item_body(queue, case="NOPE-2")]},
        format="json",
    )
    assert bulk.status_code == 404 and "items[1]" in bulk.json()["detail"]
    assert not AuditRecord.objects.filter(action="create").exists()


def test_bulk_create_joins_several_cases(api, svc, queue, make_case):
    make_case("B-1")
    make_case("B-2", due_at="2030-01-01T00:00:00Z")
    bodies = [
        factories.item_body(queue, case="B-1"),
        factories.item_body(queue, case="B-2"),
        factories.item_body(queue),
        factories.item_body(queue, case="B-2", due_at="2029-06-01T00:00:00Z"),
    ]
    resp = api(svc).post("/api/v1/workitems/bulk", {"items": bodies}, format="json")
    assert resp.status_code == 201, resp.content
    items = resp.json()["items"]
    assert [i["case"] for i in items] == ["B-1", "B-2", None, "B-2"]
    assert [i["due_at"] for i in items] == [None, "2030-01-01T00:00:00Z", None, "2029-06-01T00:00:00Z"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"title": "no number"}, "case_number"),
        ({"case_number": "has space"}, "case_number"),
        ({"case_number": "a/b"}, "case_number"),
        ({"case_number": "X", "data": [1]}, "data"),
        ({"case_number": "X", "due_at": "tomorrow"}, "due_at"),
        ({"case_number": "X", "sensitive_keys": "iban"}, "sensitive_keys"),
        ({"case_number": "X", "state": "closed"}, "state"),
    ],
)
def test_bad_case_bodies_are_400_naming_the_field(api, svc, body, field):
    resp = api(svc).post("/api/v1/cases", body, format="json")
    assert resp.status_code == 400, resp.content
    assert field in {e["field"] for e in resp.json()["errors"]}
    assert not Case.objects.exists()


def test_a_taken_number_is_409_and_workers_may_not_create(api, svc, alice, make_case):
    make_case("DUP-1")
    assert api(svc).post("/api/v1/cases", {"case_number": "DUP-1"}, format="json").status_code == 409
    assert api(alice).post("/api/v1/cases", {"case_number": "W-1"}, format="json").status_code == 403


def test_sod_scope_case_needs_a_case(api, svc, queue):
    resp = _create(api, svc, queue, sod_key="k", sod_scope="case")
    assert resp.status_code == 400
    assert [e["field"] for e in resp.json()["errors"]] == ["sod_scope"]
    assert _create(api, svc, queue, sod_scope="team").status_code == 400


def test_close_refused_while_items_are_open_then_closed_and_reopened(api, svc, alice, queue, make_case):
    make_case("CL-1")
    item = _create(api, svc, queue, case="CL-1").json()
    refused = api(svc).post("/api/v1/cases/CL-1/close", {"reason": "done"}, format="json")
    assert refused.status_code == 409
    assert "1 open item" in refused.json()["detail"]
    assert api(svc).post(f"/api/v1/workitems/{item['id']}/cancel", {"reason": "dup"}, format="json").status_code == 200

    stale = api(svc).post("/api/v1/cases/CL-1/close", {}, format="json", HTTP_IF_MATCH='"7"')
    assert stale.status_code == 412
    closed = api(svc).post("/api/v1/cases/CL-1/close", {"reason": "done"}, format="json", HTTP_IF_MATCH='"1"')
    assert closed.status_code == 200, closed.content
    assert (closed.json()["state"], closed.json()["version"], closed["ETag"]) == ("closed", 2, '"2"')
    assert closed.json()["closed_at"] is not None

    again = api(svc).post("/api/v1/cases/CL-1/close", {}, format="json")
    assert again.status_code == 409 and again.json()["allowed_actions"] == ["reopen"]
    joining = _create(api, svc, queue, case="CL-1")
    assert joining.status_code == 409 and "closed" in joining.json()["detail"]
    assert api(alice).post("/api/v1/cases/CL-1/reopen", {}, format="json").status_code == 403

    reopened = api(svc).post("/api/v1/cases/CL-1/reopen", {}, format="json")
    assert reopened.status_code == 200 and reopened.json()["state"] == "open"
    assert reopened.json()["closed_at"] is None
    assert _create(api, svc, queue, case="CL-1").status_code == 201
    actions = list(AuditRecord.objects.filter(stream__startswith="case:").order_by("id").values_list("action", "data"))
    assert actions == [("case.create", actions[0][1]), ("case.close", {"reason": "done"}), ("case.reopen", {})]
    assert audit_verify().ok


def test_unknown_case_routes_are_404(api, svc):
    assert api(svc).get("/api/v1/cases/NONE").status_code == 404
    assert api(svc).post("/api/v1/cases/NONE/close", {}, format="json").status_code == 404


def test_list_cases_paginates_newest_first(api, svc, make_case):
    for n in range(3):
        make_case(f"L-{n}")
    first = api(svc).get("/api/v1/cases", {"page_size": 2}).json()
    assert [c["case_number"] for c in first["results"]] == ["L-2", "L-1"]
    second = api(svc).get(first["next"]).json()
    assert [c["case_number"] for c in second["results"]] == ["L-0"]
