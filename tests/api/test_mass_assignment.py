"""Mass assignment: read-only fields in a body are refused (creates) or ignored (actions), never applied."""

from __future__ import annotations

import pytest

from audit.models import AuditRecord
from events.models import OutboxEvent
from tests.api.helpers import assert_field_error, assert_problem, create_body, drive, item_state
from workitems.models import Queue, WorkItem

READ_ONLY = {
    "id": 424242,
    "version": 99,
    "state": "COMPLETED",
    "sub_status": "approved",
    "created_at": "2020-01-01T00:00:00Z",
    "updated_at": "2020-01-01T00:00:00Z",
    "assigned_at": "2020-01-01T00:00:00Z",
    "started_at": "2020-01-01T00:00:00Z",
    "completed_at": "2020-01-01T00:00:00Z",
    "escalation_level": 5,
    "result": {"approved": True},
    "allowed_actions": ["complete"],
}
SERVER_SIDE = {"created_by": "alice", "outcome_reason": "x", "reserved_for": "alice"}


def _nothing_written():
    return not WorkItem.objects.exists() and not OutboxEvent.objects.exists() and not AuditRecord.objects.exists()


@pytest.mark.parametrize("field", sorted(READ_ONLY))
def test_create_with_a_read_only_field_is_400_naming_it(api, svc, queue, field):
    resp = api(svc).post("/api/v1/workitems", create_body(queue, **{field: READ_ONLY[field]}), format="json")
    body = assert_problem(resp, 400, "validation-error")
    assert_field_error(body, field, "read-only")
    assert field in body["detail"]
    assert _nothing_written()


@pytest.mark.parametrize("field", sorted(SERVER_SIDE))
def test_create_with_a_server_side_field_is_400(api, svc, alice, queue, field):
    resp = api(svc).post("/api/v1/workitems", create_body(queue, **{field: SERVER_SIDE[field]}), format="json")
    assert_field_error(assert_problem(resp, 400, "validation-error"), field)
    assert _nothing_written()


def test_create_with_every_read_only_field_names_each(api, svc, queue):
    resp = api(svc).post("/api/v1/workitems", create_body(queue, **READ_ONLY), format="json")
    body = assert_problem(resp, 400, "validation-error")
    assert {e["field"] for e in body["errors"]} >= set(READ_ONLY)
    assert _nothing_written()


def test_bulk_with_a_read_only_field_names_the_index(api, svc, queue):
    bodies = [create_body(queue) for _ in range(4)]
    bodies[2]["version"] = 7
    bodies[3]["state"] = "COMPLETED"
    resp = api(svc).post("/api/v1/workitems/bulk", {"items": bodies}, format="json")
    body = assert_problem(resp, 400, "validation-error")
    assert_field_error(body, "items[2].version", "read-only")
    assert_field_error(body, "items[3].state", "read-only")
    assert _nothing_written()


def test_create_with_an_assignee_is_direct_assignment_not_mass_assignment(api, svc, alice, queue):
    resp = api(svc).post("/api/v1/workitems", create_body(queue, assignee="alice"), format="json")
    assert resp.status_code == 201, resp.content
    assert item_state(resp.json()["id"]) == ("ASSIGNED", 1, alice.pk)


@pytest.mark.parametrize(
    ("action", "state", "persona", "body_extra"),
    [
        ("claim", "OFFERED", "alice", {}),
        ("start", "ASSIGNED", "alice", {}),
        ("complete", "IN_PROGRESS", "alice", {"result": {"ok": 1}}),
        ("fail", "IN_PROGRESS", "alice", {"reason": "x"}),
        ("escalate", "OFFERED", "sam", {"reason": "x"}),
    ],
)
def test_read_only_fields_in_an_action_body_are_refused(
    request, api, alice, bob, sam, make_item, action, state, persona, body_extra
):
    item = drive(make_item(), state, worker=alice, supervisor=sam)
    before = (item.state, item.version, item.assignee_id, item.priority, item.escalation_level)
    tampering = {"state": "CANCELLED", "version": 77, "assignee": "bob", "priority": 1, "escalation_level": 9}
    resp = api(request.getfixturevalue(persona)).post(
        f"/api/v1/workitems/{item.pk}/{action}", {**tampering, **body_extra}, format="json"
    )
    # An action's body takes only that action's arguments (as a create refuses read-only fields):
    # each other member is named in a 400 and nothing is done, neither the action nor the tampering.
    problem = assert_problem(resp, 400, "validation-error")
    assert sorted(e["field"] for e in problem["errors"]) == sorted(tampering)
    item.refresh_from_db()
    assert (item.state, item.version, item.assignee_id, item.priority, item.escalation_level) == before


def test_queue_create_and_patch_refuse_unknown_and_read_only_fields(api, admin, queue):
    client = api(admin)
    resp = client.post("/api/v1/queues", {"name": "q2", "created_at": "2020-01-01T00:00:00Z"}, format="json")
    assert_field_error(assert_problem(resp, 400, "validation-error"), "created_at")
    assert not Queue.objects.filter(name="q2").exists()
    before = Queue.objects.values().get(pk=queue.pk)
    resp = client.patch(
        f"/api/v1/queues/{queue.name}", {"description": "new", "updated_at": "2020-01-01T00:00:00Z"}, format="json"
    )
    assert_field_error(assert_problem(resp, 400, "validation-error"), "updated_at")
    assert Queue.objects.values().get(pk=queue.pk) == before


def test_queue_name_cannot_be_renamed_by_patch(api, admin, queue):
    resp = api(admin).patch(f"/api/v1/queues/{queue.name}", {"name": "renamed"}, format="json")
    assert_field_error(assert_problem(resp, 400, "validation-error"), "name")
    assert Queue.objects.filter(name=queue.name).exists() and not Queue.objects.filter(name="renamed").exists()
