"""The SDK's directory methods against the real server (live_server)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import workstream_client as wc

from directory import services


def test_users_and_availability(ws, worker_client, alice, carol, bob):
    usernames = {u["username"] for u in ws.list_users()}
    assert {"alice", "carol", "bob"} <= usernames
    assert ws.get_user("alice")["username"] == "alice"

    w = worker_client(alice)
    assert {u["username"] for u in w.list_users()} >= {"alice", "carol"}
    with pytest.raises(wc.NotFoundError):
        w.get_user("bob")  # another team: does not exist for alice

    until = datetime.now(UTC) + timedelta(days=3)
    me = w.set_availability("alice", False, out_of_office_until=until, delegate="carol")
    assert me["availability"]["available"] is False and me["availability"]["delegate"] == "carol"
    assert me["availability"]["out_of_office_until"].startswith(until.strftime("%Y-%m-%dT%H:%M"))
    me = w.set_availability("alice", True)
    assert me["availability"]["available"] is True
    with pytest.raises(wc.ValidationError) as exc:
        w.set_availability("alice", False, delegate="no-such-user")
    assert exc.value.errors[0]["field"] == "delegate"


def test_groups_departments_roles(ws, alice, queue):
    operations = services.department_create(actor=None, code="operations", name="Operations")
    services.department_create(actor=None, code="claims", name="Claims", parent=operations)
    reviewer = services.role_create(actor=None, code="reviewer", name="Reviewer", actions=["claim"], queues=[queue])
    services.role_assignment_grant(actor=None, user=alice, role=reviewer)

    assert "team-a" in {g["name"] for g in ws.list_groups()}
    assert [(d["code"], d["parent"]) for d in ws.list_departments()] == [("claims", "operations"), ("operations", None)]
    assert [(r["code"], r["queues"], r["actions"], r["holders"]) for r in ws.list_roles()] == [
        ("reviewer", [queue.name], ["claim"], 1)
    ]
