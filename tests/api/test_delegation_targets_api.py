"""Who an item may be given to, over REST (issue 10, item 4): refusals are 409
constraint-violated naming the constraint (person, candidate, active) or 403 for an override
by someone who may not override; a supervisor's `override: true` is honoured and audited. The
rule itself is tested in tests/workitems/test_delegation_targets.py."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from tests import factories
from tests.api.helpers import assert_field_error, assert_problem
from workitems import services
from workitems.models import WorkItem


@pytest.fixture
def held(svc, alice, queue):
    """An item of team A's queue that alice holds."""
    item = factories.item(actor=svc, queue=queue)
    return services.work_item_claim(item_id=item.pk, actor=alice)


@pytest.mark.parametrize(
    ("target", "constraint"),
    [("bob", "candidate"), ("svc", "person"), ("ada", "person"), ("gone", "active")],
)
def test_delegate_to_an_ineligible_target_is_a_409_naming_the_constraint(
    api, alice, carol, admin, svc, bob, team_a, held, target, constraint
):
    factories.user("gone", roles=["worker"], groups=[team_a], is_active=False)
    resp = api(alice).post(f"/api/v1/workitems/{held.pk}/delegate", {"user": target}, format="json")
    body = assert_problem(resp, 409, "constraint-violated", detail_contains=target)
    assert body["constraint"] == constraint
    assert WorkItem.objects.get(pk=held.pk).version == held.version
    ok = api(alice).post(f"/api/v1/workitems/{held.pk}/delegate", {"user": "carol"}, format="json")
    assert ok.status_code == 200 and ok.json()["assignee"] == "carol"


def test_a_supervisor_override_over_rest_is_honoured_and_audited(api, sam, bob, svc, queue):
    item = factories.item(actor=svc, queue=queue)
    url = f"/api/v1/workitems/{item.pk}/assign"
    body = assert_problem(api(sam).post(url, {"user": "bob"}, format="json"), 409, "constraint-violated")
    assert body["constraint"] == "candidate"
    body = assert_problem(
        api(sam).post(url, {"user": "svc", "override": True}, format="json"), 409, "constraint-violated"
    )
    assert body["constraint"] == "person"
    resp = api(sam).post(url, {"user": "bob", "override": True}, format="json")
    assert resp.status_code == 200 and resp.json()["assignee"] == "bob"
    history = api(sam).get(f"/api/v1/workitems/{item.pk}/history").json()
    assert history[-1]["action"] == "assign" and history[-1]["actor"] == "sam"
    assert history[-1]["data"]["override"] is True and history[-1]["data"]["assignee"] == "bob"


@pytest.mark.parametrize("target", ["bob", "carol"])
def test_a_worker_override_is_403(api, alice, carol, bob, held, target):
    resp = api(alice).post(f"/api/v1/workitems/{held.pk}/delegate", {"user": target, "override": True}, format="json")
    assert_problem(resp, 403, "not-allowed", detail_contains="supervisors and admins")
    assert WorkItem.objects.get(pk=held.pk).assignee_id == held.assignee_id


@pytest.mark.parametrize("bad", ["maybe", None, [True], {"x": 1}])
def test_override_must_be_a_boolean(api, sam, bob, held, bad):
    resp = api(sam).post(f"/api/v1/workitems/{held.pk}/delegate", {"user": "bob", "override": bad}, format="json")
    assert_field_error(assert_problem(resp, 400, "validation-error"), "override")


@pytest.mark.parametrize(("assignee", "constraint"), [("svc", "person"), ("bob", "candidate"), ("ada", "person")])
def test_create_with_an_ineligible_assignee_is_a_409_and_writes_nothing(
    api, svc, admin, bob, queue, assignee, constraint
):
    body = factories.item_body(queue, assignee=assignee)
    resp = api(svc).post("/api/v1/workitems", body, format="json")
    problem = assert_problem(resp, 409, "constraint-violated", detail_contains="assignee")
    assert problem["constraint"] == constraint and not WorkItem.objects.exists()


@pytest.mark.parametrize(("target", "message"), [("svc", "not a person"), ("bob", "shares no team"), ("ada", "person")])
def test_availability_delegate_must_be_a_person_of_the_team(api, alice, svc, bob, admin, target, message):
    resp = api(alice).patch("/api/v1/users/alice/availability", {"available": False, "delegate": target}, format="json")
    assert_field_error(assert_problem(resp, 400, "validation-error"), "delegate", message)


def test_the_openapi_document_declares_override():
    document = json.loads(Client().get("/openapi.json", HTTP_ACCEPT="application/json").content)
    override = document["components"]["schemas"]["UserInRequest"]["properties"]["override"]  # assign, delegate
    assert override["type"] == "boolean" and "supervisors and admins only" in override["description"]
