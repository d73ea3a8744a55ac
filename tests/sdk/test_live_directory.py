"""The SDK's directory and webhook-subscription methods against the real server
(live_server). Each test is skipped while its endpoints are not routed in this build."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import workstream_client as wc

from tests.sdk.conftest import requires_endpoint


def test_users_and_availability(ws, worker_client, alice, carol, bob):
    requires_endpoint("/api/v1/users")
    requires_endpoint("/api/v1/users/alice/availability")
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


def test_groups_departments_roles(ws, alice):
    for path in ("/api/v1/groups", "/api/v1/departments", "/api/v1/roles"):
        requires_endpoint(path)
    assert "team-a" in {g["name"] for g in ws.list_groups()}
    assert isinstance(list(ws.list_departments()), list)
    assert isinstance(list(ws.list_roles()), list)
