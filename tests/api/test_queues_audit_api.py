"""Queues, audit and features endpoints: successes and the errors the contract names."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from audit.models import AuditRecord
from directory.models import Role, RoleAssignment
from tests import factories
from tests.api.helpers import assert_field_error, assert_problem, drive
from workitems import services
from workitems.models import Calendar, Queue

# --- queues -----------------------------------------------------------------------------------------


def test_admin_creates_a_queue(api, admin, team_a):
    factories.queue("esc")
    body = {
        "name": "claims",
        "description": "claim reviews",
        "strategy": "least_loaded",
        "candidate_groups": ["team-a"],
        "capacity_per_user": 5,
        "sla": "PT4H",
        "escalation_queue": "esc",
        "sensitive_keys": ["ssn"],
        "active": True,
    }
    resp = api(admin).post("/api/v1/queues", body, format="json")
    assert resp.status_code == 201, resp.content
    assert resp["Location"] == "/api/v1/queues/claims"
    out = resp.json()
    for key in ("name", "description", "strategy", "candidate_groups", "capacity_per_user", "escalation_queue"):
        assert out[key] == body[key], key
    assert out["lifecycle"] is None and out["active"] is True
    q = Queue.objects.get(name="claims")
    assert q.sla == timedelta(hours=4) and q.capacity_per_user == 5
    assert AuditRecord.objects.filter(action="queue.create").count() == 1


@pytest.mark.parametrize("persona", ["sam", "alice", "svc"])
def test_only_admins_create_queues(request, api, persona):
    resp = api(request.getfixturevalue(persona)).post("/api/v1/queues", {"name": "nope"}, format="json")
    assert_problem(resp, 403, "not-allowed")
    assert not Queue.objects.filter(name="nope").exists()


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/v1/queues", {"name": "team-a-queue"}),
        ("/api/v1/calendars", {"name": "office", "time_zone": "UTC", "working_hours": {"mon": [["09:00", "17:00"]]}}),
    ],
)
def test_a_name_that_exists_is_a_conflict(api, admin, queue, path, body):
    """Creating a definition whose name is taken is a 409 (the request is fine, the name is not
    free), and changes nothing."""
    Calendar.objects.create(name="office", time_zone="UTC", working_hours={"mon": [["09:00", "17:00"]]})
    before = (Queue.objects.count(), Calendar.objects.count())
    resp = api(admin).post(path, body, format="json")
    problem = assert_problem(resp, 409, "conflict")
    assert "already exists" in problem["detail"]
    assert (Queue.objects.count(), Calendar.objects.count()) == before


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "name"),
        ({"name": "has space"}, "name"),
        ({"name": "q", "strategy": "telepathy"}, "strategy"),
        ({"name": "q", "strategy": "direct"}, "strategy"),
        ({"name": "q", "sla": "4 hours"}, "sla"),
        ({"name": "q", "sla": "PT0S"}, "sla"),
        ({"name": "q", "capacity_per_user": 0}, "capacity_per_user"),
        ({"name": "q", "capacity_per_user": "many"}, "capacity_per_user"),
        ({"name": "q", "candidate_groups": ["no-such-group"]}, "candidate_groups"),
        ({"name": "q", "candidate_groups": "team-a"}, "candidate_groups"),
        ({"name": "q", "escalation_queue": "missing"}, "escalation_queue"),
        ({"name": "q", "lifecycle": "missing"}, "lifecycle"),
        ({"name": "q", "active": "yes"}, "active"),
        ({"name": "q", "sensitive_keys": "ssn"}, "sensitive_keys"),
    ],
)
def test_queue_validation_names_the_field(api, admin, queue, body, field):
    count = Queue.objects.count()
    resp = api(admin).post("/api/v1/queues", body, format="json")
    assert_field_error(assert_problem(resp, 400, "validation-error"), field)
    assert Queue.objects.count() == count


def test_get_queue_and_unknown_queue(api, alice, queue):
    resp = api(alice).get(f"/api/v1/queues/{queue.name}")
    assert resp.status_code == 200 and resp.json()["name"] == queue.name
    assert resp.json()["candidate_groups"] == ["team-a"]
    assert_problem(api(alice).get("/api/v1/queues/unknown"), 404, "not-found")


def test_a_member_through_a_role_assignment_sees_the_queue_it_may_claim_from(api, svc, bob, queue):
    """Queue membership is one rule (policy.queue_member_filter: a candidate group or a role
    assignment valid now) for claiming and for reading the queue: bob, not in team A, holds a
    role granting team A's queue, claims its item and sees the queue; once the role lapses he
    does neither."""
    role = Role.objects.create(code="reviewer", name="reviewer")
    role.queues.set([queue])
    grant = RoleAssignment.objects.create(user=bob, role=role, valid_from=timezone.now() - timedelta(hours=1))
    item = factories.item(actor=svc, queue=queue)
    assert services.work_item_claim_next(actor=bob).pk == item.pk
    resp = api(bob).get(f"/api/v1/queues/{queue.name}")
    assert resp.status_code == 200, resp.content
    assert resp.json()["name"] == queue.name
    assert [q["name"] for q in api(bob).get("/api/v1/queues").json()] == [queue.name]
    RoleAssignment.objects.filter(pk=grant.pk).update(valid_to=timezone.now())
    assert_problem(api(bob).get(f"/api/v1/queues/{queue.name}"), 404, "not-found")
    assert api(bob).get("/api/v1/queues").json() == []


def test_patch_queue_changes_only_what_is_sent_and_is_audited(api, admin, queue):
    resp = api(admin).patch(f"/api/v1/queues/{queue.name}", {"sla": "PT2H", "capacity_per_user": 3}, format="json")
    assert resp.status_code == 200, resp.content
    queue.refresh_from_db()
    assert queue.sla == timedelta(hours=2) and queue.capacity_per_user == 3 and queue.strategy == "offer"
    record = AuditRecord.objects.get(action="queue.update")
    assert set(record.data["changes"]) == {"sla", "capacity_per_user"}


def test_patch_queue_errors(api, admin, queue):
    client = api(admin)
    assert_problem(client.patch("/api/v1/queues/missing", {"description": "x"}, format="json"), 404, "not-found")
    resp = client.patch(f"/api/v1/queues/{queue.name}", {"escalation_queue": queue.name}, format="json")
    assert_field_error(assert_problem(resp, 400, "validation-error"), "escalation_queue")
    resp = client.patch(f"/api/v1/queues/{queue.name}", [1], format="json")
    assert_problem(resp, 400, "validation-error")


def test_deactivated_queue_refuses_new_items(api, admin, svc, queue):
    api(admin).patch(f"/api/v1/queues/{queue.name}", {"active": False}, format="json")
    resp = api(svc).post("/api/v1/workitems", factories.item_body(queue), format="json")
    assert_field_error(assert_problem(resp, 400, "validation-error"), "queue", "not active")


def test_queue_stats(api, alice, carol, sam, make_item):
    drive(make_item(), "ASSIGNED", worker=alice, supervisor=sam)
    drive(make_item(), "IN_PROGRESS", worker=alice, supervisor=sam)
    drive(make_item(), "ASSIGNED", worker=carol, supervisor=sam)
    make_item()
    make_item(due_at="2000-01-01T00:00:00Z")
    done = drive(make_item(due_at="2100-01-01T00:00:00Z"), "IN_PROGRESS", worker=carol, supervisor=sam)
    services.work_item_complete(item_id=done.pk, actor=carol, result={})
    resp = api(alice).get("/api/v1/queues/team-a-queue/stats")
    assert resp.status_code == 200
    stats = resp.json()
    assert stats["queue"] == "team-a-queue"
    assert (stats["open"], stats["offered"], stats["assigned"], stats["in_progress"]) == (5, 2, 2, 1)
    assert stats["breached"] == 1  # created past its deadline
    assert stats["oldest_age_seconds"] >= 0
    assert stats["sla_compliance"] == 1.0 and stats["completed"] == 1
    assert {(u["user"], u["open"]) for u in stats["per_user_load"]} == {("alice", 2), ("carol", 1)}


def test_queue_stats_of_unknown_queue_is_404(api, sam):
    assert_problem(api(sam).get("/api/v1/queues/unknown/stats"), 404, "not-found")


# --- audit ------------------------------------------------------------------------------------------


def test_audit_list_is_paginated_oldest_first_for_supervisors(api, sam, alice, make_item):
    for _ in range(3):
        services.work_item_claim(item_id=make_item().pk, actor=alice)
    resp = api(sam).get("/api/v1/audit?page_size=4")
    assert resp.status_code == 200
    page = resp.json()
    assert set(page) == {"results", "next", "previous"} and len(page["results"]) == 4 and page["next"]
    ids = [r["id"] for r in page["results"]]
    assert ids == sorted(ids)


@pytest.mark.parametrize("path", ["/api/v1/audit", "/api/v1/audit/verify"])
def test_audit_is_for_supervisors_and_admins(api, alice, svc, sam, admin, path):
    assert_problem(api(alice).get(path), 403, "not-allowed")
    assert_problem(api(svc).get(path), 403, "not-allowed")
    assert_problem(api(None).get(path), 401, "unauthorized")
    assert api(sam).get(path).status_code == 200
    assert api(admin).get(path).status_code == 200


def test_audit_verify_reports_an_intact_chain(api, sam, alice, make_item):
    services.work_item_claim(item_id=make_item().pk, actor=alice)
    report = api(sam).get("/api/v1/audit/verify").json()
    assert report["ok"] is True and report["records_checked"] >= 2 and report["broken_id"] is None


# --- features ---------------------------------------------------------------------------------------


def test_features_shows_the_configuration_in_force_without_secrets(api, alice, api_config):
    api_config({"rateLimits": {"default": "77/s"}})
    resp = api(alice).get("/api/v1/features")
    assert resp.status_code == 200
    body = resp.json()
    assert body["rateLimits"]["default"] == "77/s"
    assert body["performance"]["maxPageSize"] == 500
    text = resp.content.decode().lower()
    for secret in ("secret_key", "password", "signing", "dev-only-insecure"):
        assert secret not in text


def test_features_needs_authentication(api, db):
    assert_problem(api(None).get("/api/v1/features"), 401, "unauthorized")
