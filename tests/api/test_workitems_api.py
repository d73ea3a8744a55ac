"""Work-item endpoints of docs/api.md: each success and each error the contract names."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from audit.models import AuditRecord
from events.models import OutboxEvent
from tests import factories
from tests.api.helpers import assert_field_error, assert_problem, create_body, drive, item_state
from workitems import services
from workitems.models import WorkItem

CREATE_FIELDS = {
    "workflow_id",
    "run_id",
    "task_name",
    "title",
    "description",
    "queue",
    "priority",
    "due_at",
    "context_data",
    "candidate_users",
    "candidate_groups",
    "excluded_users",
    "required_skills",
    "sod_key",
    "assignee",
    "strategy",
    "callback_url",
    "correlation_id",
}
REPRESENTATION_EXTRA = {
    "id",
    "state",
    "sub_status",
    "version",
    "escalation_level",
    "created_at",
    "updated_at",
    "assigned_at",
    "started_at",
    "completed_at",
    "result",
    "allowed_actions",
}


# --- POST /workitems ------------------------------------------------------------------------


def test_create_returns_201_location_etag_and_the_full_representation(api, svc, alice, carol, team_a, queue):
    due = (timezone.now() + timedelta(days=2)).replace(microsecond=0)
    body = {
        "workflow_id": "claims-2026",
        "run_id": "run-8812",
        "task_name": "review-claim",
        "title": "Review claim 8812",
        "description": "check the amount",
        "queue": queue.name,
        "priority": 70,
        "due_at": due.isoformat(),
        "context_data": {"claim_id": 8812, "amount": 1200},
        "candidate_users": ["alice"],
        "candidate_groups": ["team-a"],
        "excluded_users": ["carol"],
        "required_skills": ["claims"],
        "sod_key": "claim-8812",
        "callback_url": "https://engine.example/cb",
        "correlation_id": "corr-1",
    }
    resp = api(svc).post("/api/v1/workitems", body, format="json")
    assert resp.status_code == 201, resp.content
    out = resp.json()
    assert resp["Location"] == f"/api/v1/workitems/{out['id']}"
    assert resp["ETag"] == '"1"'
    assert set(out) >= CREATE_FIELDS | REPRESENTATION_EXTRA
    for key in ("workflow_id", "run_id", "task_name", "title", "description", "queue", "priority", "context_data"):
        assert out[key] == body[key], key
    assert parse_datetime(out["due_at"]) == due
    assert out["due_at"].endswith("Z")  # UTC out
    assert out["candidate_users"] == ["alice"] and out["candidate_groups"] == ["team-a"]
    assert out["excluded_users"] == ["carol"]
    assert out["state"] == "OFFERED" and out["assignee"] is None
    assert out["version"] == 1 and out["escalation_level"] == 0 and out["result"] is None
    stored = WorkItem.objects.get(pk=out["id"])
    assert stored.created_by == svc and stored.queue == queue and stored.priority == 70
    assert OutboxEvent.objects.filter(aggregate_id=str(stored.pk), event_type="workitem.created.v1").count() == 1


def test_create_defaults_priority_50_and_due_at_from_the_queue_sla(api, svc, team_a):
    q = factories.queue("sla-queue", groups=[team_a], sla=timedelta(hours=4))
    before = timezone.now()
    resp = api(svc).post("/api/v1/workitems", create_body(q), format="json")
    assert resp.status_code == 201, resp.content
    out = resp.json()
    assert out["priority"] == 50
    due = parse_datetime(out["due_at"])
    assert before + timedelta(hours=4) <= due <= timezone.now() + timedelta(hours=4)


def test_create_with_a_direct_assignee_assigns(api, svc, alice, queue):
    resp = api(svc).post("/api/v1/workitems", create_body(queue, assignee="alice"), format="json")
    assert resp.status_code == 201, resp.content
    assert resp.json()["state"] == "ASSIGNED" and resp.json()["assignee"] == "alice"


def test_create_unknown_queue_is_404(api, svc, queue):
    resp = api(svc).post("/api/v1/workitems", create_body(queue, queue="no-such-queue"), format="json")
    assert_problem(resp, 404, "not-found", detail_contains="no-such-queue")
    assert not WorkItem.objects.exists()


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ({"priority": 101}, "priority"),
        ({"priority": -1}, "priority"),
        ({"priority": "high"}, "priority"),
        ({"workflow_id": ""}, "workflow_id"),
        ({"context_data": [1, 2]}, "context_data"),
        ({"due_at": "tomorrow"}, "due_at"),
        ({"due_at": "2030-01-01T10:00:00"}, "due_at"),  # no zone
        ({"candidate_users": ["nobody-here"]}, "candidate_users"),
        ({"candidate_groups": ["no-group"]}, "candidate_groups"),
        ({"assignee": "nobody-here"}, "assignee"),
        ({"strategy": "telepathy"}, "strategy"),
        ({"callback_url": "ftp://x.example/"}, "callback_url"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_create_validation_errors_name_the_field(api, svc, queue, override, field):
    resp = api(svc).post("/api/v1/workitems", create_body(queue, **override), format="json")
    body = assert_problem(resp, 400, "validation-error")
    assert_field_error(body, field)
    assert not WorkItem.objects.exists()


@pytest.mark.parametrize("missing", ["workflow_id", "task_name", "queue"])
def test_create_required_fields(api, svc, queue, missing):
    body = create_body(queue)
    del body[missing]
    resp = api(svc).post("/api/v1/workitems", body, format="json")
    assert_field_error(assert_problem(resp, 400, "validation-error"), missing, "required")


def test_create_by_a_worker_is_403(api, alice, queue):
    resp = api(alice).post("/api/v1/workitems", create_body(queue), format="json")
    assert_problem(resp, 403, "not-allowed")
    assert not WorkItem.objects.exists()


# --- POST /workitems/bulk -------------------------------------------------------------------


def test_bulk_creates_all_in_order(api, svc, queue):
    bodies = [create_body(queue, title=f"t{i}") for i in range(5)]
    resp = api(svc).post("/api/v1/workitems/bulk", {"items": bodies}, format="json")
    assert resp.status_code == 201, resp.content
    items = resp.json()["items"]
    assert [i["title"] for i in items] == [f"t{i}" for i in range(5)]
    assert all(i["state"] == "OFFERED" and i["version"] == 1 for i in items)
    assert WorkItem.objects.count() == 5
    assert OutboxEvent.objects.filter(event_type="workitem.created.v1").count() == 5


def test_bulk_error_names_the_index_and_creates_nothing(api, svc, queue):
    bodies = [create_body(queue) for _ in range(5)]
    bodies[3]["queue"] = 7
    bodies[4]["priority"] = 1000
    resp = api(svc).post("/api/v1/workitems/bulk", {"items": bodies}, format="json")
    body = assert_problem(resp, 400, "validation-error")
    assert_field_error(body, "items[3].queue")
    assert_field_error(body, "items[4].priority")
    assert "items[3]" in body["detail"]
    assert not WorkItem.objects.exists()
    assert not OutboxEvent.objects.exists()


def test_bulk_semantic_error_at_an_index_creates_nothing(api, svc, queue):
    bodies = [create_body(queue) for _ in range(4)]
    bodies[2]["candidate_users"] = ["ghost"]
    resp = api(svc).post("/api/v1/workitems/bulk", {"items": bodies}, format="json")
    assert_field_error(assert_problem(resp, 400, "validation-error"), "items[2].candidate_users", "ghost")
    assert not WorkItem.objects.exists()


def test_bulk_unknown_queue_at_an_index_is_404_naming_it(api, svc, queue):
    bodies = [create_body(queue), create_body(queue, queue="nope")]
    resp = api(svc).post("/api/v1/workitems/bulk", {"items": bodies}, format="json")
    assert_problem(resp, 404, "not-found", detail_contains="items[1]")
    assert not WorkItem.objects.exists()


@pytest.mark.parametrize("payload", [{}, {"items": []}, {"items": {"a": 1}}, {"items": "x"}])
def test_bulk_needs_a_non_empty_list(api, svc, payload):
    resp = api(svc).post("/api/v1/workitems/bulk", payload, format="json")
    assert_field_error(assert_problem(resp, 400, "validation-error"), "items")


def test_bulk_over_the_limit_is_400(api, svc, queue, api_config):
    api_config({"performance": {"bulkCreateMax": 3}})
    resp = api(svc).post("/api/v1/workitems/bulk", {"items": [create_body(queue)] * 4}, format="json")
    assert_field_error(assert_problem(resp, 400, "validation-error"), "items", "3")
    assert not WorkItem.objects.exists()


def test_bulk_by_a_worker_is_403(api, alice, queue):
    resp = api(alice).post("/api/v1/workitems/bulk", {"items": [create_body(queue)]}, format="json")
    assert_problem(resp, 403, "not-allowed")


# --- GET /workitems/{id} --------------------------------------------------------------------


def test_get_returns_the_item_with_etag(api, alice, make_item):
    item = make_item(title="hello")
    resp = api(alice).get(f"/api/v1/workitems/{item.pk}")
    assert resp.status_code == 200
    assert resp["ETag"] == '"1"'
    out = resp.json()
    assert out["id"] == item.pk and out["title"] == "hello" and out["allowed_actions"] == ["claim"]


def test_get_etag_follows_the_version(api, alice, sam, make_item):
    item = drive(make_item(), "IN_PROGRESS", worker=alice, supervisor=sam)
    resp = api(alice).get(f"/api/v1/workitems/{item.pk}")
    assert resp["ETag"] == f'"{item.version}"' == '"3"'
    assert resp.json()["version"] == 3


@pytest.mark.parametrize("item_id", ["999999999", "0"])
def test_get_unknown_item_is_404(api, alice, item_id):
    assert_problem(api(alice).get(f"/api/v1/workitems/{item_id}"), 404, "not-found")


# --- POST /workitems/{id}/{action}: each action's success ------------------------------------

# action → (state before, actor persona, body, state after, assignee after)
ACTION_SUCCESS = {
    "claim": ("OFFERED", "alice", None, "ASSIGNED", "alice"),
    "release": ("ASSIGNED", "alice", None, "OFFERED", None),
    "start": ("ASSIGNED", "alice", None, "IN_PROGRESS", "alice"),
    "complete": ("IN_PROGRESS", "alice", {"result": {"approved": True}}, "COMPLETED", "alice"),
    "fail": ("IN_PROGRESS", "alice", {"reason": "cannot"}, "FAILED", "alice"),
    "suspend": ("ASSIGNED", "sam", {"reason": "wait"}, "SUSPENDED", "alice"),
    "resume": ("SUSPENDED", "sam", None, "ASSIGNED", "alice"),
    "delegate": ("ASSIGNED", "alice", {"user": "carol"}, "ASSIGNED", "carol"),
    "assign": ("OFFERED", "sam", {"user": "carol"}, "ASSIGNED", "carol"),
    "escalate": ("OFFERED", "sam", {"reason": "late"}, "OFFERED", None),
    "cancel": ("OFFERED", "sam", {"reason": "not needed"}, "CANCELLED", None),
}


@pytest.mark.parametrize("action", sorted(ACTION_SUCCESS))
def test_action_success_returns_the_item_after(request, api, alice, carol, sam, make_item, action):
    before, persona, body, after, assignee = ACTION_SUCCESS[action]
    item = drive(make_item(), before, worker=alice, supervisor=sam)
    version = item.version
    actor = request.getfixturevalue(persona)
    resp = api(actor).post(f"/api/v1/workitems/{item.pk}/{action}", body or {}, format="json")
    assert resp.status_code == 200, resp.content
    out = resp.json()
    assert out["state"] == after and out["assignee"] == assignee
    assert out["version"] == version + 1
    assert resp["ETag"] == f'"{version + 1}"'
    assert item_state(item.pk)[:2] == (after, version + 1)
    if action == "complete":
        assert out["result"] == {"approved": True} and out["completed_at"]
    if action == "escalate":
        assert out["escalation_level"] == 1
    assert AuditRecord.objects.filter(work_item_id=item.pk, action=action).count() == 1


def test_action_with_matching_if_match_succeeds(api, alice, make_item):
    item = make_item()
    resp = api(alice).post(f"/api/v1/workitems/{item.pk}/claim", {}, format="json", HTTP_IF_MATCH='"1"')
    assert resp.status_code == 200 and resp["ETag"] == '"2"'


def test_action_without_a_body_is_accepted(api, alice, make_item):
    item = make_item()
    resp = api(alice).post(f"/api/v1/workitems/{item.pk}/claim")
    assert resp.status_code == 200, resp.content


# --- action errors ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "state", "body"),
    [
        ("start", "OFFERED", None),
        ("complete", "ASSIGNED", {"result": {}}),
        ("release", "IN_PROGRESS", None),
        ("resume", "ASSIGNED", None),
        ("claim", "COMPLETED", None),
        ("cancel", "COMPLETED", None),
    ],
)
def test_invalid_transition_is_409_with_allowed_actions(api, alice, sam, make_item, action, state, body):
    item = drive(make_item(), state, worker=alice, supervisor=sam)
    before = item_state(item.pk)
    actor = sam if action in ("resume", "cancel") else alice
    resp = api(actor).post(f"/api/v1/workitems/{item.pk}/{action}", body or {}, format="json")
    kind = "already-claimed" if (action, state) == ("claim", "COMPLETED") else "invalid-transition"
    out = assert_problem(resp, 409, "invalid-transition" if state == "COMPLETED" else kind)
    assert out["state"] == state and out["action"] == action
    assert isinstance(out["allowed_actions"], list)
    expected = api(actor).get(f"/api/v1/workitems/{item.pk}").json()["allowed_actions"]
    assert out["allowed_actions"] == expected
    assert action not in out["allowed_actions"]
    assert item_state(item.pk) == before


def test_claim_of_a_claimed_item_is_409_already_claimed(api, alice, carol, sam, make_item):
    item = drive(make_item(), "ASSIGNED", worker=alice, supervisor=sam)
    out = assert_problem(api(carol).post(f"/api/v1/workitems/{item.pk}/claim"), 409, "already-claimed")
    assert out["state"] == "ASSIGNED" and "allowed_actions" in out
    assert item_state(item.pk) == ("ASSIGNED", 2, alice.pk)


def test_stale_if_match_is_412_and_changes_nothing(api, alice, make_item):
    item = make_item()
    out = assert_problem(
        api(alice).post(f"/api/v1/workitems/{item.pk}/claim", HTTP_IF_MATCH='"7"'), 412, "stale-version"
    )
    assert out["current_version"] == 1
    assert item_state(item.pk) == ("OFFERED", 1, None)


@pytest.mark.parametrize("header", ["garbage", 'W/"1"', '"1", "2"', '"-1"', '""', "1"])
def test_malformed_if_match_is_412_never_a_500(api, alice, make_item, header):
    item = make_item()
    resp = api(alice).post(f"/api/v1/workitems/{item.pk}/claim", HTTP_IF_MATCH=header)
    assert_problem(resp, 412, "stale-version")
    assert item_state(item.pk) == ("OFFERED", 1, None)


def test_if_match_star_means_no_precondition(api, alice, make_item):
    item = make_item()
    resp = api(alice).post(f"/api/v1/workitems/{item.pk}/claim", HTTP_IF_MATCH="*")
    assert resp.status_code == 200


@pytest.mark.parametrize(
    ("action", "state", "persona", "body"),
    [
        ("suspend", "ASSIGNED", "alice", None),  # workers may not suspend
        ("escalate", "OFFERED", "alice", None),
        ("assign", "OFFERED", "alice", {"user": "carol"}),
        ("cancel", "OFFERED", "alice", None),  # neither creator nor supervisor
        ("start", "ASSIGNED", "carol", None),  # not the assignee
        ("complete", "IN_PROGRESS", "carol", {"result": {}}),
        ("release", "ASSIGNED", "carol", None),
        ("start", "ASSIGNED", "sam", None),  # only the assignee starts
    ],
)
def test_action_not_allowed_is_403(request, api, alice, carol, sam, make_item, action, state, persona, body):
    item = drive(make_item(), state, worker=alice, supervisor=sam)
    before = item_state(item.pk)
    client = api(request.getfixturevalue(persona))
    resp = client.post(f"/api/v1/workitems/{item.pk}/{action}", body or {}, format="json")
    assert_problem(resp, 403, "not-allowed")
    assert item_state(item.pk) == before


@pytest.mark.parametrize(
    ("action", "body", "field"),
    [
        ("complete", {"result": 5}, "result"),
        ("complete", {"result": [1]}, "result"),
        ("fail", {"reason": "x" * 2001}, "reason"),
        ("fail", {"reason": {"a": 1}}, "reason"),
        ("delegate", {}, "user"),
        ("delegate", {"user": "ghost"}, "user"),
    ],
)
def test_action_body_validation_is_400(api, alice, sam, make_item, action, body, field):
    item = drive(make_item(), "IN_PROGRESS", worker=alice, supervisor=sam)
    before = item_state(item.pk)
    resp = api(alice).post(f"/api/v1/workitems/{item.pk}/{action}", body, format="json")
    assert_field_error(assert_problem(resp, 400, "validation-error"), field)
    assert item_state(item.pk) == before


def test_action_on_unknown_item_is_404(api, sam):
    assert_problem(api(sam).post("/api/v1/workitems/999999999/cancel"), 404, "not-found")


# --- POST /workitems/claim-next ----------------------------------------------------------------


def test_claim_next_takes_the_best_item(api, alice, make_item):
    make_item(priority=10)
    best = make_item(priority=90)
    make_item(priority=50)
    resp = api(alice).post("/api/v1/workitems/claim-next", {}, format="json")
    assert resp.status_code == 200, resp.content
    assert resp.json()["id"] == best.pk and resp.json()["assignee"] == "alice"
    assert resp["ETag"] == '"2"'
    assert item_state(best.pk) == ("ASSIGNED", 2, alice.pk)


def test_claim_next_in_a_named_queue(api, alice, team_a, make_item, svc):
    other = factories.queue("other-a", groups=[team_a])
    make_item(priority=100)
    wanted = factories.item(actor=svc, queue=other, priority=1)
    resp = api(alice).post("/api/v1/workitems/claim-next", {"queue": "other-a"}, format="json")
    assert resp.status_code == 200 and resp.json()["id"] == wanted.pk


def test_claim_next_with_nothing_to_take_is_204(api, bob, make_item):
    make_item()  # team A's: not bob's
    resp = api(bob).post("/api/v1/workitems/claim-next", {}, format="json")
    assert resp.status_code == 204 and resp.content == b""


def test_claim_next_unknown_queue_is_404(api, alice):
    assert_problem(api(alice).post("/api/v1/workitems/claim-next", {"queue": "nope"}, format="json"), 404, "not-found")


def test_claim_next_by_a_service_client_is_403(api, svc, make_item):
    make_item()
    assert_problem(api(svc).post("/api/v1/workitems/claim-next", {}, format="json"), 403, "not-allowed")


def test_claim_next_bad_body_is_400(api, alice):
    # a list of names is a claim-next over several queues; these are not names
    for body, field in (
        ({"queue": 5}, "queue"),
        ({"queue": []}, "queue"),
        ({"queue": ["a", 7]}, "queue"),
        ({"queues": []}, "queues"),
        ({"queue": "a", "queues": ["b"]}, "queues"),
    ):
        resp = api(alice).post("/api/v1/workitems/claim-next", body, format="json")
        assert_field_error(assert_problem(resp, 400, "validation-error"), field)


# --- GET /workitems/{id}/history -------------------------------------------------------------


def test_history_lists_the_audit_records_oldest_first(api, alice, sam, make_item):
    item = drive(make_item(), "IN_PROGRESS", worker=alice, supervisor=sam)
    services.work_item_complete(item_id=item.pk, actor=alice, result={"ok": 1})
    resp = api(alice).get(f"/api/v1/workitems/{item.pk}/history")
    assert resp.status_code == 200
    records = resp.json()
    assert [r["action"] for r in records] == ["create", "claim", "start", "complete"]
    assert [r["to_state"] for r in records] == ["OFFERED", "ASSIGNED", "IN_PROGRESS", "COMPLETED"]
    assert [r["actor"] for r in records] == ["svc", "alice", "alice", "alice"]
    assert all(r["work_item"] == item.pk for r in records)
    seqs = [r["seq"] for r in records]
    assert seqs == sorted(seqs)
    assert records[1]["prev_hash"] == records[0]["hash"]


def test_history_of_unknown_item_is_404(api, sam):
    assert_problem(api(sam).get("/api/v1/workitems/999999999/history"), 404, "not-found")


# --- GET /workitems: the list's basics (filters and pages have their own files) ----------------


def test_list_shape(api, sam, make_item):
    items = [make_item() for _ in range(3)]
    resp = api(sam).get("/api/v1/workitems")
    assert resp.status_code == 200
    body = resp.json()
    assert set(body) == {"results", "next", "previous"}
    assert body["next"] is None and body["previous"] is None
    assert {r["id"] for r in body["results"]} == {i.pk for i in items}
    assert all("allowed_actions" in r for r in body["results"])


def test_sub_status_action_moves_between_named_sub_statuses(svc, alice):
    from rest_framework.test import APIClient

    from tests import factories
    from workitems import services

    lc = factories.lifecycle(
        "subs-api", sub_statuses={"initial": "drafting", "moves": {"drafting": ["review"], "review": ["drafting"]}}
    )
    group = factories.group("subs-team")
    alice.groups.add(group)
    q = factories.queue("subs-q", groups=[group], lifecycle=lc)
    item = factories.item(actor=svc, queue=q)
    services.work_item_claim(item_id=item.pk, actor=alice)
    services.work_item_start(item_id=item.pk, actor=alice)
    c = APIClient()
    c.force_authenticate(alice)
    r = c.post(f"/api/v1/workitems/{item.pk}/sub-status", {"sub_status": "review"}, format="json")
    assert r.status_code == 200, r.content
    assert r.json()["sub_status"] == "review"
    r = c.post(f"/api/v1/workitems/{item.pk}/sub-status", {"sub_status": "nowhere"}, format="json")
    assert r.status_code == 400 and r.json()["errors"][0]["field"] == "sub_status"
