"""Directory endpoints: users (skills, capacity, availability, load), groups, departments,
roles; visibility (workers see their teams), PATCH availability (self or supervisor)."""

from __future__ import annotations

import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from directory import services
from tests import factories
from tests.api.helpers import assert_field_error, assert_problem
from workitems import services as items

pytestmark = pytest.mark.django_db


def client_for(user) -> APIClient:
    c = APIClient()
    if user is not None:
        c.force_authenticate(user)
    return c


def usernames(resp) -> list[str]:
    assert resp.status_code == 200, resp.content
    return [u["username"] for u in resp.json()["results"]]


def test_user_detail_shows_skills_capacity_availability_load(alice, carol, sam, make_item):
    ops = services.department_create(actor=None, code="ops", name="Operations")
    services.profile_update(actor=None, user=alice, department=ops, skills={"german": 7}, capacity=4)
    items.work_item_claim(item_id=make_item().pk, actor=alice)
    services.availability_set(actor=alice, user=alice, delegate=carol)  # the item moves to carol
    body = client_for(sam).get("/api/v1/users/alice").json()
    assert body["skills"] == {"german": 7} and body["capacity"] == 4 and body["department"] == "ops"
    assert body["availability"]["available"] is False and body["availability"]["delegate"] == "carol"
    assert body["load"] == 0
    assert body["platform_roles"] == ["worker"] and set(body["groups"]) == {"team-a", "workstream-workers"}
    assert client_for(sam).get("/api/v1/users/carol").json()["load"] == 1


def test_worker_sees_their_team_only(alice, carol, bob, sam):
    assert usernames(client_for(alice).get("/api/v1/users")) == ["alice", "carol"]
    assert usernames(client_for(bob).get("/api/v1/users")) == ["bob"]
    assert_problem(client_for(alice).get("/api/v1/users/bob"), 404, "not-found")
    assert usernames(client_for(sam).get("/api/v1/users")) == ["alice", "bob", "carol", "sam"]


def test_users_list_filters_and_paginates(alice, carol, bob, sam, svc):
    services.availability_set(actor=alice, user=alice)
    c = client_for(svc)
    assert usernames(c.get("/api/v1/users?group=team-a")) == ["alice", "carol"]
    assert usernames(c.get("/api/v1/users?group=team-a&available=false")) == ["alice"]
    assert usernames(c.get("/api/v1/users?search=CAR")) == ["carol"]
    page = c.get("/api/v1/users?page_size=2").json()
    assert [u["username"] for u in page["results"]] == ["alice", "bob"] and page["next"]
    second = c.get(page["next"]).json()
    assert [u["username"] for u in second["results"]] == ["carol", "sam"]
    body = assert_problem(c.get("/api/v1/users?colour=red"), 400, "validation-error")
    assert_field_error(body, "colour")
    assert_problem(c.get("/api/v1/users?available=maybe"), 400, "validation-error")


def test_users_list_query_count_does_not_grow_with_users(svc, team_a):
    for i in range(3):
        factories.user(f"w{i}", roles=["worker"], groups=[team_a])
    c = client_for(svc)
    c.get("/api/v1/users")  # the caller's own roles are read once and kept on the user
    with CaptureQueriesContext(connection) as few:
        assert c.get("/api/v1/users").status_code == 200
    for i in range(3, 15):
        factories.user(f"w{i}", roles=["worker"], groups=[team_a])
    with CaptureQueriesContext(connection) as many:
        assert c.get("/api/v1/users").status_code == 200
    assert len(many) == len(few)


def test_department_filter_includes_sub_departments(alice, carol, sam):
    ops = services.department_create(actor=None, code="ops", name="Operations")
    claims = services.department_create(actor=None, code="claims", name="Claims", parent=ops)
    services.profile_update(actor=None, user=alice, department=claims)
    services.profile_update(actor=None, user=carol, department=ops)
    assert usernames(client_for(sam).get("/api/v1/users?department=ops")) == ["alice", "carol"]
    assert usernames(client_for(sam).get("/api/v1/users?department=claims")) == ["alice"]
    deps = client_for(alice).get("/api/v1/departments").json()["results"]
    assert deps == [
        {"code": "claims", "name": "Claims", "parent": "ops", "manager": None, "members": 1},
        {"code": "ops", "name": "Operations", "parent": None, "manager": None, "members": 1},
    ]


def test_groups_visibility(alice, bob, sam):
    mine = client_for(alice).get("/api/v1/groups").json()["results"]
    assert [(g["name"], g["platform_role"]) for g in mine] == [("team-a", None), ("workstream-workers", "worker")]
    everything = [g["name"] for g in client_for(sam).get("/api/v1/groups").json()["results"]]
    assert {"team-a", "team-b", "workstream-supervisors", "workstream-workers"} <= set(everything)


def test_patch_availability_self(alice, carol):
    resp = client_for(alice).patch(
        "/api/v1/users/alice/availability",
        {"available": False, "out_of_office_until": "2999-01-01T00:00:00Z", "delegate": "carol"},
        format="json",
    )
    assert resp.status_code == 200, resp.content
    av = resp.json()["availability"]
    assert av == {
        "available": False,
        "out_of_office_from": av["out_of_office_from"],
        "out_of_office_until": "2999-01-01T00:00:00Z",
        "delegate": "carol",
    }
    resp = client_for(alice).patch("/api/v1/users/alice/availability", {"available": True}, format="json")
    assert resp.json()["availability"] == {
        "available": True,
        "out_of_office_from": None,
        "out_of_office_until": None,
        "delegate": None,
    }


def test_patch_availability_permissions(alice, carol, bob, sam):
    # A teammate sees alice but may not change her availability; another team does not see her.
    assert_problem(
        client_for(carol).patch("/api/v1/users/alice/availability", {"available": False}, format="json"),
        403,
        "not-allowed",
    )
    assert_problem(
        client_for(bob).patch("/api/v1/users/alice/availability", {"available": False}, format="json"), 404, "not-found"
    )
    resp = client_for(sam).patch("/api/v1/users/alice/availability", {"available": False}, format="json")
    assert resp.status_code == 200 and resp.json()["availability"]["available"] is False
    assert_problem(client_for(None).patch("/api/v1/users/alice/availability", {}, format="json"), 401, "unauthorized")


def test_patch_availability_validation(alice, carol):
    c = client_for(alice)
    body = assert_problem(
        c.patch("/api/v1/users/alice/availability", {"available": False, "delegate": "alice"}, format="json"),
        400,
        "validation-error",
    )
    assert_field_error(body, "delegate", "own delegate")
    body = assert_problem(
        c.patch("/api/v1/users/alice/availability", {"available": False, "delegate": "nobody"}, format="json"),
        400,
        "validation-error",
    )
    assert_field_error(body, "delegate", "unknown user")
    body = assert_problem(c.patch("/api/v1/users/alice/availability", {}, format="json"), 400, "validation-error")
    assert_field_error(body, "available")
    body = assert_problem(
        c.patch("/api/v1/users/alice/availability", {"available": True, "delegate": "carol"}, format="json"),
        400,
        "validation-error",
    )
    assert_field_error(body, "delegate")
    body = assert_problem(
        c.patch(
            "/api/v1/users/alice/availability",
            {
                "available": False,
                "out_of_office_from": "2999-01-02T00:00:00Z",
                "out_of_office_until": "2999-01-01T00:00:00Z",
            },
            format="json",
        ),
        400,
        "validation-error",
    )
    assert_field_error(body, "out_of_office_until")


def test_roles_listing(alice, queue):
    role = services.role_create(actor=None, code="reviewer", name="Reviewer", actions=["claim"], queues=[queue])
    services.role_assignment_grant(actor=None, user=alice, role=role)
    body = client_for(alice).get("/api/v1/roles").json()
    assert body["results"] == [
        {
            "code": "reviewer",
            "name": "Reviewer",
            "description": "",
            "queues": ["team-a-queue"],
            "actions": ["claim"],
            "holders": 1,
        }
    ]
    assert [r["role"] for r in client_for(alice).get("/api/v1/users/alice").json()["roles"]] == ["reviewer"]


def test_openapi_documents_the_directory_endpoints(sam):
    resp = client_for(sam).get("/openapi.json?format=json")
    assert resp.status_code == 200, resp.content
    paths = json.loads(resp.content)["paths"]
    for path in (
        "/api/v1/users",
        "/api/v1/users/{username}",
        "/api/v1/users/{username}/availability",
        "/api/v1/groups",
        "/api/v1/departments",
        "/api/v1/roles",
    ):
        assert path in paths, path
